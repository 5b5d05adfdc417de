"""The LightningDataModule: corpus -> split -> cached waveforms -> device-side features.

CPU side (DataLoader): fixed-length waveform clips ``[batch, time]`` and labels ``[batch]``
(and speaker indices ``[batch]`` with ``features.normalize=speaker``).
Device side (``on_after_batch_transfer``): waveform augmentation (training only) ->
feature front-end -> speaker normalisation (when configured) -> SpecAugment (training
only) -> ``[batch, n_features, frames]``.

With ``features=egemaps|compare`` (openSMILE descriptors) the CPU side gives descriptor
windows ``[batch, n_descriptors, frames]`` instead, cut from each file's descriptors
(computed once per file and cached: :mod:`ser_lightning.data.feature_cache`,
:class:`~ser_lightning.data.lld_dataset.LLDClipDataset`); waveform augmentation is refused
(it cannot change cached descriptors), SpecAugment-style masks and mixup still apply.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from ser_lightning.data.cache import DecodedAudio, check_trim, load_or_decode
from ser_lightning.data.corpora import Utterance, write_manifest
from ser_lightning.data.dataset import ClipDataset, all_windows, collate_clips
from ser_lightning.data.lld_dataset import LLDClipDataset
from ser_lightning.data.recorded_split import data_fingerprint, split_fingerprint, write_split_metadata
from ser_lightning.data.splits import Split
from ser_lightning.data.usable import drop_unusable, read_rows, split_usable
from ser_lightning.errors import ConfigError, DataQualityError
from ser_lightning.labels import sort_labels
from ser_lightning.transforms.augment import (
    SPECTROGRAM_AUGMENTS,
    TARGET_AUGMENTS,
    WAVEFORM_AUGMENTS,
    build_chain,
    descriptor_augment_problem,
)
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor
from ser_lightning.transforms.speaker_norm import FeatureStats, SpeakerNormalizer, recording_stats

log = logging.getLogger(__name__)

__all__ = ["DataQualityError", "SERDataModule"]  # DataQualityError lives in data/usable.py


#: ``data.sampler`` values (see :class:`SERDataModule`); ``none``/null: plain shuffling.
SAMPLERS = ("none", "balanced", "corpus", "corpus_class")


class SERDataModule(L.LightningDataModule):
    """Speech emotion data for one corpus (or a manifest), split and featurised.

    Args:
        corpus: reader name (``tess``, ``ravdess``, ``savee``, ``crema_d``, ``emodb``,
            ``manifest``).
        root: corpus folder (for ``manifest``: the CSV file).
        split: protocol, see :mod:`ser_lightning.data.splits`.
        val_fraction, test_fraction: part sizes for ``random`` and ``speaker`` splits.
        fold, num_folds: fold for ``kfold`` and ``loso``.
        seed: split seed.
        sample_rate: internal rate in Hz.
        clip_seconds: length of the training/evaluation clips in seconds.
        batch_size: clips per batch.
        num_workers: DataLoader worker processes, or ``"auto"``: 0 when training on
            the CPU (a batch is a few slices of the memory-mapped cache, about 1 ms;
            worker processes would compete with the model for the same cores), else
            ``min(4, CPUs - 1)`` so a GPU is not left waiting (docs/PERFORMANCE.md).
        pin_memory: page-locked host batches, or ``"auto"``: on when training on CUDA.
        subset_fraction: train on a seeded, class-stratified share of the training
            part (in ``(0, 1]``), taken after the split so validation and test are
            unchanged; for scaling studies and quick runs.
        gender: keep only ``"female"`` or ``"male"`` speakers (``None``: all).
        min_seconds: files shorter than this are skipped.
        max_bad_fraction: stop with :class:`DataQualityError` when more than this
            fraction of files are skipped.
        cache_dir: waveform cache folder (``None``: decode into memory every run).
        features: :class:`~ser_lightning.transforms.features.FeatureConfig` settings.
        augment: augmentation settings (``conf/augment``).
        output_dir: run directory; split manifests and the skipped-file list go there.
        extra_labels: labels accepted beyond the canonical set (manifests).
        test_speakers, train_speakers: speaker ids for ``split=cross`` (with or
            without the ``corpus:`` prefix).
        test_corpus: the corpus ``split=corpus`` (leave-one-corpus-out) tests on.
        val_speakers: ``split=cross``: validate on these speakers (held out of training)
            instead of a random share of the training speakers' utterances.
        reader_args: extra keyword arguments of the corpus reader (``data=combined``:
            ``corpora``, ``roots``, ``calm``).
        sampler: ``None`` (shuffle); ``"balanced"``: draw training examples with
            ``WeightedRandomSampler`` (weight 1 / class count, with replacement), so each
            class is seen equally often per epoch (an alternative to class-weighted
            loss); ``"corpus"``: weight 1 / corpus count, so each corpus of a combined
            training set is drawn equally often (a small corpus is not drowned by a
            large one); ``"corpus_class"``: weight 1 / count of the (corpus, class)
            pair, both at once.
        trim: ``none``, ``vad`` (Silero) or ``energy``: cut each file's leading and
            trailing silence once, when the waveform cache is built (part of its key),
            before clips are cropped (:func:`ser_lightning.data.vad.trim_silence`).
        train_crop: ``"random"`` (default) or ``"windows"``: training crops drawn from the
            scoring windows (:class:`~ser_lightning.data.dataset.ClipDataset`); the
            pipeline sets it for a frozen encoder with an embedding cache (``model=ssl``).
        feature_cache_dir: the per-file openSMILE cache (``paths.feature_cache_dir``) for
            ``features=egemaps|compare`` (``None``: computed every run, nothing stored).
            A file openSMILE cannot process is skipped with its reason before the split.

    Raises:
        ConfigError: an invalid setting; waveform augmentation (noise, gain, time shift,
            speed, pitch) with ``features=egemaps|compare``.
    """

    def __init__(
        self,
        corpus: str,
        root: str,
        split: str = "auto",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        fold: int = 0,
        num_folds: int = 5,
        seed: int = 0,
        sample_rate: int = 16000,
        clip_seconds: float = 3.0,
        batch_size: int = 32,
        num_workers: int | str = "auto",
        pin_memory: bool | str = "auto",
        subset_fraction: float = 1.0,
        gender: str | None = None,
        min_seconds: float = 0.1,
        max_bad_fraction: float = 0.05,
        cache_dir: str | None = None,
        features: dict | None = None,
        augment: dict | None = None,
        output_dir: str | None = None,
        extra_labels: list[str] | tuple[str, ...] = (),
        test_speakers: list[str] | None = None,
        train_speakers: list[str] | None = None,
        reader_args: dict | None = None,
        sampler: str | None = None,
        trim: str = "none",
        test_corpus: str | None = None,
        val_speakers: list[str] | None = None,
        train_crop: str = "random",
        feature_cache_dir: str | None = None,
    ):
        super().__init__()
        if train_crop not in ("random", "windows"):
            raise ConfigError(f"data.train_crop='{train_crop}' is not allowed; use random or windows")
        self.train_crop = train_crop
        if gender not in (None, "female", "male"):
            raise ConfigError(f"data.gender='{gender}' is not allowed; use female, male or null")
        if clip_seconds <= 0:
            raise ConfigError(f"data.clip_seconds must be > 0, got {clip_seconds}")
        if batch_size <= 0:
            raise ConfigError(f"data.batch_size must be > 0, got {batch_size}")
        if sampler not in (None, *SAMPLERS):
            raise ConfigError(f"data.sampler='{sampler}' is not allowed; use one of {list(SAMPLERS)} or null")
        if not 0.0 < subset_fraction <= 1.0:
            raise ConfigError(f"data.subset_fraction must be in (0, 1], got {subset_fraction}")
        if num_workers != "auto" and not (isinstance(num_workers, int) and num_workers >= 0):
            raise ConfigError(f"data.num_workers must be 'auto' or an integer >= 0, got {num_workers!r}")
        if pin_memory not in ("auto", True, False):
            raise ConfigError(f"data.pin_memory must be 'auto', true or false, got {pin_memory!r}")
        self.corpus, self.root = corpus, root
        self.split_args = dict(protocol=split, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, fold=fold, num_folds=num_folds,
                               test_speakers=test_speakers, train_speakers=train_speakers, test_corpus=test_corpus,
                               val_speakers=val_speakers)
        self.reader_args = dict(reader_args or {})
        self.sampler = None if sampler == "none" else sampler
        check_trim(trim, sample_rate)
        self.trim = trim
        self.sample_rate, self.clip_seconds = sample_rate, clip_seconds
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.subset_fraction = subset_fraction
        self.gender, self.min_seconds, self.max_bad_fraction = gender, min_seconds, max_bad_fraction
        self.cache_dir, self.output_dir, self.extra_labels = cache_dir, output_dir, tuple(extra_labels)
        self.feature_config = FeatureConfig.from_dict({**(features or {}), "sample_rate": sample_rate})
        self.features = FeatureExtractor(self.feature_config)
        self.wave_augment = build_chain(augment, WAVEFORM_AUGMENTS, sample_rate=sample_rate)
        self.spec_augment = build_chain(augment, SPECTROGRAM_AUGMENTS)
        if self.feature_config.kind == "waveform" and len(self.spec_augment):
            raise ConfigError("features=waveform (model=ssl) has no spectrogram to mask: set augment.specaugment=null "
                              "(augment=none, or waveform augmentation only)")
        if problem := descriptor_augment_problem(self.feature_config.kind, augment):
            raise ConfigError(problem)
        if self.feature_config.is_lld and train_crop != "random":
            raise ConfigError(f"features={self.feature_config.kind} crops descriptor windows at random; data.train_crop=windows "
                              f"is for a frozen encoder's embedding cache (model=ssl)")
        self.feature_cache_dir = feature_cache_dir
        self.target_augment = build_chain(augment, TARGET_AUGMENTS)  # mixup: soft targets
        self.class_names: list[str] = []
        self.split: Split | None = None
        self.skipped: dict[str, str] = {}
        self._audio: DecodedAudio | None = None
        self._untrimmed: DecodedAudio | None = None  # trim != none: the scored parts' whole waves
        self._datasets: dict[str, ClipDataset] = {}
        self.speaker_norm: SpeakerNormalizer | None = None
        #: features.normalize=speaker: statistics pooled over the training speakers (the
        #: fallback of prediction when a recording's own statistics are not wanted).
        self.training_stats: FeatureStats | None = None
        #: What the model is trained on, for its checkpoint: the data settings
        #: (:func:`~ser_lightning.data.recorded_split.data_fingerprint`) and, after
        #: :meth:`setup`, the split's fingerprint.
        self.data_settings = data_fingerprint({
            "corpus": corpus, "split": split, "seed": seed, "fold": fold, "num_folds": num_folds,
            "val_fraction": val_fraction, "test_fraction": test_fraction, "gender": gender,
            "test_speakers": test_speakers, "train_speakers": train_speakers, "reader_args": self.reader_args,
            "extra_labels": list(self.extra_labels), "sample_rate": sample_rate, "clip_seconds": clip_seconds,
            "min_seconds": min_seconds, "subset_fraction": subset_fraction, "test_corpus": test_corpus,
            "val_speakers": val_speakers})
        self.split_fingerprint: str | None = None

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    def read_rows(self) -> list[Utterance]:
        """The corpus manifest after the gender filter."""
        return read_rows(self.corpus, self.root, self.gender, self.reader_args, self.extra_labels)

    def prepare_data(self) -> None:
        """Fill the waveform cache once (rank 0 only under DDP)."""
        if self.cache_dir is not None:
            load_or_decode([r.path for r in self.read_rows()], self.sample_rate, self.cache_dir, self.min_seconds, self.trim)

    def setup(self, stage: str | None = None) -> None:
        """Read, decode (or load the cache), drop bad files, split and build datasets."""
        if self._datasets:
            return
        # unusable files are dropped before the split (data/usable.py: the one way to do it)
        usable = drop_unusable(self.read_rows(), self.sample_rate, self.cache_dir, self.min_seconds, self.max_bad_fraction, self.corpus,
                               trim=self.trim)
        llds = self._descriptors(usable) if self.feature_config.is_lld else None
        audio, self.skipped, good, index_of = usable.audio, usable.skipped, usable.good, usable.index_of()
        self.class_names = sort_labels({r.label for r in good})
        self.split = split_usable(good, subset_fraction=self.subset_fraction, **self.split_args)
        self.split_fingerprint = split_fingerprint(self.split, self.root)
        log.info("split %s (fingerprint %s)", self.split.describe(), self.split_fingerprint)
        target_of = {c: k for k, c in enumerate(self.class_names)}
        speaker_of = self._speaker_statistics(audio, good, index_of, llds) if self.feature_config.normalize == "speaker" else None
        for part in ("train", "val", "test"):
            part_rows = getattr(self.split, part)
            if llds is not None:
                self._datasets[part] = LLDClipDataset(
                    llds, [index_of[r.path] for r in part_rows], [target_of[r.label] for r in part_rows],
                    self.feature_config.n_frames(self.clip_samples), train=(part == "train"),
                    speakers=None if speaker_of is None else [speaker_of[r.speaker] for r in part_rows])
                continue
            self._datasets[part] = ClipDataset(
                audio, [index_of[r.path] for r in part_rows], [target_of[r.label] for r in part_rows],
                self.clip_samples, train=(part == "train"), crop=self.train_crop,
                speakers=None if speaker_of is None else [speaker_of[r.speaker] for r in part_rows],
            )
        self._audio = audio
        self._index_of = index_of
        self.write_artifacts()

    def _descriptors(self, usable) -> list:
        """openSMILE descriptors (``[n_descriptors, frames]``) of every usable file of
        ``usable``, from the per-file cache or computed now; files openSMILE cannot
        process join ``usable.skipped`` (with its reason) before the split.

        Raises:
            DataQualityError: more than ``max_bad_fraction`` of the files are skipped.
            ConfigError: ``opensmile`` is not installed.
        """
        from ser_lightning.data.feature_cache import load_or_extract

        paths = [r.path for r in usable.rows]
        feats = load_or_extract(paths, usable.audio, self.feature_config.kind, "lld", self.feature_cache_dir, trim=self.trim)
        log.info("openSMILE %s descriptors: %d files from the cache, %d computed (%.1f s)", self.feature_config.kind,
                 feats.hits, feats.computed, feats.seconds)
        usable.skipped.update({p: r for p, r in feats.errors.items() if p not in usable.skipped})
        if len(usable.skipped) > self.max_bad_fraction * len(paths):
            raise DataQualityError(f"{len(usable.skipped)} of {len(paths)} files of {self.corpus} cannot be used (more than "
                                   f"data.max_bad_fraction={self.max_bad_fraction}); first: {next(iter(usable.skipped.values()))}")
        return feats.values

    def waveform_of(self, rows: list[Utterance]):
        """``i -> [time]`` float32 waveform (whole, uncropped, at :attr:`sample_rate`) of
        ``rows[i]`` as a user's file reaches the scoring path: never trimmed, whatever
        ``trim`` did to the training audio (``predict.py`` and ``eval.py`` do not trim).

        Raises:
            KeyError: a row that is not in the split (call after :meth:`setup`).
        """
        indices = [self._index_of[r.path] for r in rows]
        if self.trim == "none":
            return lambda i: self._audio.wave(indices[i])
        if self._untrimmed is None:
            self._untrimmed = load_or_decode(list(self._index_of), self.sample_rate, self.cache_dir, self.min_seconds)
        untrimmed_index = {p: k for k, p in enumerate(self._index_of)}
        positions = [untrimmed_index[r.path] for r in rows]
        return lambda i: self._untrimmed.wave(positions[i])

    def _speaker_statistics(self, audio: DecodedAudio, rows: list[Utterance], index_of: dict[str, int],
                            llds: list | None = None) -> dict[str, int]:
        """Fill :attr:`speaker_norm` with every speaker's feature statistics over all of
        their (unaugmented, uncropped) recordings, whatever part they are in; labels are
        not used. Also pools the training speakers' frames into :attr:`training_stats`.
        With ``llds`` (descriptor kinds), over each file's whole descriptor matrix.

        Returns:
            speaker id -> row of :attr:`speaker_norm`.
        """
        extract, n = FeatureExtractor(self.feature_config).eval(), self.feature_config.n_features
        if llds is not None:
            per_file = {}
            for r in rows:
                per_file[r.path] = FeatureStats(n)
                per_file[r.path].update(torch.from_numpy(llds[index_of[r.path]]))
        else:
            per_file = {r.path: recording_stats(extract, [audio.wave(index_of[r.path])], n) for r in rows}  # one pass over the audio
        speakers = sorted({r.speaker for r in rows})
        speaker_of = {s: k for k, s in enumerate(speakers)}
        self.speaker_norm = SpeakerNormalizer.from_stats(
            [FeatureStats.pooled([per_file[r.path] for r in rows if r.speaker == s], n) for s in speakers])
        self.training_stats = FeatureStats.pooled([per_file[r.path] for r in self.split.train], n)
        log.info("features.normalize=speaker: statistics of %d speakers", len(speakers))
        return speaker_of

    def write_artifacts(self) -> None:
        """Save the three split manifests (``splits/{train,val,test}.csv``), their
        description (``splits/split.json``: the root their paths are relative to, the
        fingerprint, the protocol, the data settings) and the skipped-file list in the
        run directory."""
        if self.output_dir is None or self.split is None:
            return
        out = Path(self.output_dir) / "splits"
        out.mkdir(parents=True, exist_ok=True)
        for part in ("train", "val", "test"):
            write_manifest(getattr(self.split, part), out / f"{part}.csv")
        write_split_metadata(self.split, self.root, out, self.data_settings)
        with (Path(self.output_dir) / "skipped_files.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "reason"])
            writer.writerows(sorted(self.skipped.items()))

    def class_counts(self, part: str = "train") -> list[int]:
        """Examples per class (in ``class_names`` order) in a part of the split."""
        counts = Counter(self._datasets[part].targets.tolist())
        return [counts.get(k, 0) for k in range(len(self.class_names))]

    def targets(self, part: str) -> torch.Tensor:
        """``[n]`` class indices of a part of the split, in loader order (unshuffled)."""
        return self._datasets[part].targets

    def _weighted_sampler(self) -> WeightedRandomSampler:
        """Draws training examples with probability proportional to 1 / (size of their
        group): the class (``sampler=balanced``), the corpus (``corpus``) or the (corpus,
        class) pair (``corpus_class``); one epoch is as many draws as training clips."""
        rows = self.split.train
        if self.sampler == "balanced":
            keys = [r.label for r in rows]
        elif self.sampler == "corpus":
            keys = [r.corpus for r in rows]
        else:
            keys = [(r.corpus, r.label) for r in rows]
        counts = Counter(keys)
        weights = torch.tensor([1.0 / counts[k] for k in keys], dtype=torch.double)
        return WeightedRandomSampler(weights, num_samples=len(keys), replacement=True)

    def _on_cuda(self) -> bool:
        """Whether batches go to a CUDA device (the trainer's, else any visible GPU)."""
        if self.trainer is not None:
            return self.trainer.strategy.root_device.type == "cuda"
        return torch.cuda.is_available()

    def loader_settings(self) -> tuple[int, bool]:
        """``(num_workers, pin_memory)`` with ``"auto"`` resolved for this machine."""
        on_cuda = self._on_cuda()
        workers = self.num_workers
        if workers == "auto":
            workers = min(4, max((os.cpu_count() or 1) - 1, 0)) if on_cuda else 0
        pin = on_cuda if self.pin_memory == "auto" else bool(self.pin_memory)
        return workers, pin

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        workers, pin = self.loader_settings()
        sampler = self._weighted_sampler() if shuffle and self.sampler else None
        return DataLoader(
            self._datasets[part],
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=workers > 0,
            collate_fn=collate_clips,
            drop_last=shuffle and len(self._datasets[part]) > self.batch_size,
        )

    def training_windows(self):
        """Every scoring window of every training file, ``[<= batch_size, clip_samples]``
        float32 batches (:func:`~ser_lightning.data.dataset.all_windows`): what a frozen
        encoder's embedding cache is filled with before the first epoch (``model=ssl``),
        so that ``train_crop=windows`` never meets a window the cache lacks."""
        return all_windows(self._datasets["train"], self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def transform_batch(self, waves: torch.Tensor, training: bool, speakers: torch.Tensor | None = None) -> torch.Tensor:
        """Waveforms ``[batch, time]`` -> features ``[batch, n_features, frames]`` on
        the waves' device, with augmentation when ``training``.

        Args:
            speakers: ``[batch]`` speaker indices; required with ``features.normalize=speaker``.

        Raises:
            ValueError: speaker normalisation without ``speakers`` (or before ``setup``).
        """
        for module in (self.features, self.wave_augment, self.spec_augment):
            module.to(waves.device)  # no-op once the buffers are there
        if training:
            waves = self.wave_augment(waves)
        feats = self.features(waves)
        if self.feature_config.normalize == "speaker":
            if speakers is None or self.speaker_norm is None:
                raise ConfigError("features.normalize=speaker needs the batch's speaker indices (and setup() to have run)")
            feats = self.speaker_norm.to(waves.device)(feats, speakers)
        if training:
            feats = self.spec_augment(feats)
        return feats

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``(waves [batch, time], targets [batch][, speakers [batch]])`` -> ``(feats, targets)``;
        with mixup in training, targets become soft ``[batch, n_classes]``."""
        waves, targets, *speakers = batch
        training = self.trainer is not None and self.trainer.training
        feats = self.transform_batch(waves, training, speakers[0] if speakers else None)
        if training:
            for mix in self.target_augment:
                feats, targets = mix(feats, targets, len(self.class_names))
        return feats, targets
