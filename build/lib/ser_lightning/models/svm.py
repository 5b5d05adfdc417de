"""A fitted support vector machine as a torch module: the SVM baseline's classifier
(:mod:`ser_lightning.baselines.svm`) rebuilt from plain tensors, so a saved SVM is loaded
like any checkpoint (``torch.load(weights_only=True)``: no pickled scikit-learn object,
no code from the file) and scores without scikit-learn.

The decision function is libsvm's one-vs-one rule (Chang & Lin, "LIBSVM: a library for
support vector machines", ACM TIST 2(3), 2011, Sec. 7) turned into one-vs-rest scores as
scikit-learn's ``SVC.decision_function(decision_function_shape="ovr")`` does (votes plus
the pairwise confidences squashed into (-1/3, 1/3)), so its arg-max is the SVM's
prediction and it agrees with scikit-learn's values to float rounding (tests).
"""

from __future__ import annotations

import torch

from ser_lightning.errors import CheckpointError

KERNELS = ("linear", "rbf")


class SVMHead(torch.nn.Module):
    """One-vs-rest decision values of a fitted multi-class SVM.

    Args:
        support_vectors: ``[n_sv, n_features]``, grouped by class (libsvm's order).
        dual_coef: ``[n_classes - 1, n_sv]`` libsvm's dual coefficients (``SVC.dual_coef_``).
        intercept: ``[n_classes * (n_classes - 1) / 2]`` one per class pair (``SVC.intercept_``).
        n_support: ``[n_classes]`` support vectors per class.
        kernel: ``linear`` or ``rbf`` (``exp(-gamma * ||x - sv||^2)``).
        gamma: the RBF width (ignored for ``linear``).

    Raises:
        CheckpointError: an unknown kernel or inconsistent shapes.
    """

    def __init__(self, support_vectors: torch.Tensor, dual_coef: torch.Tensor, intercept: torch.Tensor, n_support: torch.Tensor,
                 kernel: str, gamma: float = 1.0):
        super().__init__()
        if kernel not in KERNELS:
            raise CheckpointError(f"SVM kernel '{kernel}' is not supported; allowed: {list(KERNELS)}")
        n_classes = int(n_support.numel())
        if (n_classes < 2 or dual_coef.shape != (n_classes - 1, support_vectors.shape[0])
                or intercept.numel() != n_classes * (n_classes - 1) // 2 or int(n_support.sum()) != support_vectors.shape[0]):
            raise CheckpointError(f"SVM tensors do not fit together: {support_vectors.shape[0]} support vectors, dual_coef "
                                  f"{tuple(dual_coef.shape)}, {intercept.numel()} intercepts, n_support {n_support.tolist()}")
        # float64, as libsvm computes: float32 rounding could flip the arg-max of near ties
        self.register_buffer("support_vectors", support_vectors.double())
        self.register_buffer("dual_coef", dual_coef.double())
        self.register_buffer("intercept", intercept.double().reshape(-1))
        self.register_buffer("n_support", n_support.long().reshape(-1))
        self.kernel, self.gamma, self.n_classes = kernel, float(gamma), n_classes

    def _kernel(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, n_features]`` -> ``[batch, n_sv]`` kernel values (float64 for parity with libsvm)."""
        sv = self.support_vectors.double()
        x = x.double()
        if self.kernel == "linear":
            return x @ sv.T
        return torch.exp(-self.gamma * torch.cdist(x, sv).square())

    def pairwise(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, n_features]`` -> ``[batch, n_pairs]`` one-vs-one decision values
        (pairs ``(0,1), (0,2), ..., (1,2), ...``; positive: the first class of the pair)."""
        k = self._kernel(x)
        coef = self.dual_coef.double()
        starts = torch.cat([self.n_support.new_zeros(1), self.n_support.cumsum(0)]).tolist()
        out, p = [], 0
        for i in range(self.n_classes):
            for j in range(i + 1, self.n_classes):
                si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
                out.append(k[:, si] @ coef[j - 1, si] + k[:, sj] @ coef[i, sj] + self.intercept[p].double())
                p += 1
        return torch.stack(out, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, n_features]`` (standardised functionals) -> ``[batch, n_classes]``
        one-vs-rest scores (float32): votes + squashed summed confidences (scikit-learn's
        ``_ovr_decision_function``); for two classes ``[-d, d]`` of the one decision value ``d``."""
        dec = self.pairwise(x)
        if self.n_classes == 2:
            d = dec[:, 0]  # scikit-learn stores a binary SVM with the sign flipped: positive = the second class
            return torch.stack([-d, d], dim=1).float()
        votes = dec.new_zeros(x.shape[0], self.n_classes)
        conf = dec.new_zeros(x.shape[0], self.n_classes)
        p = 0
        for i in range(self.n_classes):
            for j in range(i + 1, self.n_classes):
                conf[:, i] += dec[:, p]
                conf[:, j] -= dec[:, p]
                votes[:, i] += (dec[:, p] >= 0).double()
                votes[:, j] += (dec[:, p] < 0).double()
                p += 1
        return (votes + conf / (3 * (conf.abs() + 1))).float()
