"""The data pipeline behind the speed work: cached vs uncached batches, the training
subset for scaling runs, DataLoader defaults and the timing callbacks."""

from __future__ import annotations

import csv
import time
from itertools import islice
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ser_lightning.training.callbacks import ChannelsLast, DataWaitTimer, EMAWeights, EpochTimer
from ser_lightning.data.audio import fit_length
from ser_lightning.data.cache import DecodedAudio
from ser_lightning.data.corpora import read_corpus
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.data.dataset import ClipDataset
from ser_lightning.data.splits import stratified_subset
from ser_lightning.models.module import SERModule

AUGMENT = {"noise": {"p": 0.5, "snr_db": [10.0, 40.0]}, "gain": {"p": 0.5, "gain_db": [-6.0, 6.0]},
           "specaugment": {"p": 0.8, "freq_mask": 8, "time_mask": 20, "num_freq_masks": 2, "num_time_masks": 2}}


@pytest.fixture(scope="module")
def savee_manifest(data_dir, tmp_path_factory) -> Path:
    """48 real SAVEE files (3 speakers, 7 classes) as a CSV manifest with absolute paths."""
    rows = read_corpus("savee", data_dir / "savee")[::7][:48]
    path = tmp_path_factory.mktemp("manifest") / "savee48.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "speaker"])
        writer.writerows([r.path, r.label, r.speaker] for r in rows)
    return path


def datamodule(manifest: Path, cache_dir: Path | None, **kwargs) -> SERDataModule:
    args = dict(corpus="manifest", root=str(manifest), split="random", seed=3, clip_seconds=1.0, batch_size=8,
                cache_dir=None if cache_dir is None else str(cache_dir), features={"kind": "logmel"}, augment=AUGMENT)
    return SERDataModule(**{**args, **kwargs})


def train_batches(dm: SERDataModule, seed: int, n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``n`` training batches after the device-side transform (augmented)."""
    dm.setup("fit")
    L.seed_everything(seed)
    return [(dm.transform_batch(waves, training=True), targets) for waves, targets in islice(dm.train_dataloader(), n)]


def _audio(lengths: list[int]) -> DecodedAudio:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    samples = np.arange(1, offsets[-1] + 1, dtype=np.float32)  # every sample distinct and non-zero
    return DecodedAudio(samples, offsets, {}, 16000)


def test_batched_clips_match_per_file_cropping():
    audio = _audio([50, 7, 20, 3, 31])
    files, clip = [0, 1, 2, 3, 4], 20
    evaluation = ClipDataset(audio, files, [0, 1, 0, 1, 0], clip, train=False)
    waves, targets = evaluation.__getitems__([4, 0, 1, 3, 2])
    assert waves.shape == (5, clip) and targets.tolist() == [0, 0, 1, 1, 0]
    for row, f in enumerate([4, 0, 1, 3, 2]):  # centred, exactly as prediction crops (fit_length)
        np.testing.assert_array_equal(waves[row].numpy(), fit_length(audio.wave(f), clip))
    torch.manual_seed(0)
    train = ClipDataset(audio, files, [0, 1, 0, 1, 0], clip, train=True)
    seen_offsets = set()
    for _ in range(20):
        waves, _ = train.__getitems__(files)
        for row, f in enumerate(files):
            wave, got = audio.wave(f), waves[row].numpy()
            if len(wave) >= clip:  # a contiguous window of the file
                start = int(got[0] - wave[0])
                np.testing.assert_array_equal(got, wave[start:start + clip])
                if f == 0:
                    seen_offsets.add(start)
            else:  # the whole file, placed somewhere inside zeros
                nz = np.flatnonzero(got)
                np.testing.assert_array_equal(got[nz[0]:nz[0] + len(wave)], wave)
                assert len(nz) == len(wave)
    assert len(seen_offsets) > 5  # random crops, not a fixed one
    single = evaluation[3]
    np.testing.assert_array_equal(single[0].numpy(), fit_length(audio.wave(3), clip))


def test_cached_and_uncached_pipelines_give_identical_batches(savee_manifest, tmp_path):
    cache = tmp_path / "cache"
    datamodule(savee_manifest, cache).prepare_data()  # fill the cache
    cached_dm = datamodule(savee_manifest, cache)
    uncached_dm = datamodule(savee_manifest, None)
    cached = train_batches(cached_dm, seed=11)
    uncached = train_batches(uncached_dm, seed=11)
    assert isinstance(cached_dm._audio.samples, np.memmap)  # really read from the cache file
    assert not isinstance(uncached_dm._audio.samples, np.memmap)
    for (fa, ta), (fb, tb) in zip(cached, uncached, strict=True):
        assert fa.shape == (8, 64, 101)
        torch.testing.assert_close(fa, fb, rtol=0, atol=0)
        assert torch.equal(ta, tb)
    # The comparison can fail: another seed gives other crops and augmentation draws.
    other = train_batches(uncached_dm, seed=12)
    assert not torch.equal(other[0][0], uncached[0][0])


def test_stratified_subset_keeps_class_shares(data_dir):
    rows = read_corpus("savee", data_dir / "savee")
    half = stratified_subset(rows, 0.5, seed=1)
    per_class = lambda rs: {lab: sum(r.label == lab for r in rs) for lab in {r.label for r in rows}}  # noqa: E731
    full_counts, half_counts = per_class(rows), per_class(half)
    assert all(half_counts[c] == round(full_counts[c] / 2) for c in full_counts)
    assert [r.path for r in half] == [r.path for r in rows if r in set(half)]  # original order kept
    assert stratified_subset(rows, 0.5, seed=1) == half
    assert stratified_subset(rows, 0.5, seed=2) != half
    assert stratified_subset(rows, 1.0, seed=1) == rows
    with pytest.raises(ValueError, match="subset_fraction"):
        stratified_subset(rows, 0.0, seed=1)


def test_subset_fraction_shrinks_train_only(savee_manifest, tmp_path):
    full = datamodule(savee_manifest, tmp_path)
    quarter = datamodule(savee_manifest, tmp_path, subset_fraction=0.25)
    full.setup("fit")
    quarter.setup("fit")
    assert quarter.split.val == full.split.val and quarter.split.test == full.split.test
    assert set(r.path for r in quarter.split.train) < set(r.path for r in full.split.train)
    assert len(quarter.train_dataloader().dataset) == len(quarter.split.train) < len(full.split.train) / 2
    with pytest.raises(ValueError, match="subset_fraction"):
        datamodule(savee_manifest, tmp_path, subset_fraction=1.5)


def test_loader_defaults_follow_the_device(savee_manifest):
    dm = datamodule(savee_manifest, None)
    workers, pin = dm.loader_settings()
    if torch.cuda.is_available():
        assert workers >= 1 and pin
    else:
        assert (workers, pin) == (0, False)
    assert datamodule(savee_manifest, None, num_workers=2, pin_memory=False).loader_settings() == (2, False)
    with pytest.raises(ValueError, match="num_workers"):
        datamodule(savee_manifest, None, num_workers="many")


class _Slow(Dataset):
    """``n`` items of 4 features; each item takes ``delay`` seconds to produce."""

    def __init__(self, n: int, delay: float):
        self.n, self.delay = n, delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        time.sleep(self.delay)
        return torch.randn(4), torch.tensor(i % 2)


class _Tiny(L.LightningModule):
    def __init__(self, train_delay: float, val_delay: float):
        super().__init__()
        self.net = nn.Linear(4, 2)
        self.train_delay, self.val_delay = train_delay, val_delay

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(_Slow(8, self.train_delay), batch_size=4)

    def val_dataloader(self):
        return DataLoader(_Slow(4, self.val_delay), batch_size=2)


def _fit(train_delay: float, val_delay: float) -> tuple[EpochTimer, DataWaitTimer]:
    epoch_timer, wait_timer = EpochTimer(), DataWaitTimer()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[epoch_timer, wait_timer])
    trainer.fit(_Tiny(train_delay, val_delay))
    return epoch_timer, wait_timer


def test_data_wait_timer_sees_a_slow_loader():
    _, slow = _fit(train_delay=0.1, val_delay=0.0)  # 0.4 s per batch of data, a tiny step
    _, fast = _fit(train_delay=0.0, val_delay=0.0)
    assert len(slow.fractions) == 1 and slow.fractions[0] > 0.5
    assert slow.wait_seconds[0] >= 2 * 4 * 0.1  # at least the loader's sleeps
    assert fast.wait_seconds[0] < slow.wait_seconds[0] - 0.6 and fast.fractions[0] < slow.fractions[0]


def test_epoch_timer_leaves_validation_out():
    epoch_timer, wait_timer = _fit(train_delay=0.0, val_delay=0.4)  # 1.6 s of validation data
    assert len(epoch_timer.seconds) == 1
    assert epoch_timer.seconds[0] < 0.8  # validation (>= 1.6 s) is not in the epoch's time
    assert wait_timer.wait_seconds[0] < 0.8


def test_channels_last_callback_converts_cnn2d_and_keeps_its_outputs():
    torch.manual_seed(0)
    feats, targets = torch.randn(8, 64, 50), torch.randint(0, 3, (8,))
    loader = DataLoader(list(zip(feats, targets, strict=True)), batch_size=4)

    def module(name: str) -> SERModule:
        return SERModule({"name": name}, ["angry", "happy", "sad"], {"kind": "logmel"}, clip_seconds=0.5)

    model = module("cnn2d")
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[ChannelsLast()])
    trainer.fit(model, train_dataloaders=loader)
    conv = model.net.features[4].weight  # [32, 16, 3, 3] (the first has 1 input channel: both layouts)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain = module("cnn2d")
    plain.load_state_dict(model.state_dict())  # a checkpoint loads into the default layout
    assert plain.net.features[4].weight.is_contiguous()
    model.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(feats), plain(feats), rtol=1e-4, atol=1e-5)
    cnn1d = module("cnn1d")  # 3-D weights: nothing to convert, training still works
    L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[ChannelsLast()]).fit(cnn1d, train_dataloaders=loader)
    assert cnn1d.net.features[0].weight.is_contiguous()


class _Recorder(_Tiny):
    """Records the weights its validation and test steps saw."""

    def validation_step(self, batch, batch_idx):
        self.val_weight = self.net.weight.detach().clone()

    def test_step(self, batch, batch_idx):
        self.test_weight = self.net.weight.detach().clone()


def test_ema_weights_are_validated_saved_and_tested(tmp_path):
    torch.manual_seed(0)
    model = _Recorder(0.0, 0.0)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[EMAWeights(decay=0.5), ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    trainer.fit(model)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    averaged, raw = saved["state_dict"]["net.weight"], saved["current_model_state"]["net.weight"]
    assert not torch.allclose(averaged, raw)
    torch.testing.assert_close(model.val_weight, averaged)  # validation scored the average
    model.net.weight.data.zero_()
    trainer.test(model, dataloaders=model.val_dataloader(), ckpt_path=str(tmp_path / "last.ckpt"))
    # Lightning's own EMAWeightAveraging would restore `raw` here (its averaged model outlives fit)
    torch.testing.assert_close(model.test_weight, averaged)
    with pytest.raises(ValueError, match="decay"):
        EMAWeights(decay=1.0)


def test_callbacks_ema_config_adds_the_average_to_the_defaults(data_dir, tmp_path):
    from ser_lightning.training.pipeline import build_callbacks
    from tests.helpers.configs import compose_train

    cfg = compose_train(["callbacks=ema", "callbacks.ema.decay=0.99"], tmp_path, data_dir, tmp_path / "cache")
    callbacks = build_callbacks(cfg)
    (ema,) = [c for c in callbacks if isinstance(c, EMAWeights)]
    assert ema.decay == 0.99
    assert any(isinstance(c, ModelCheckpoint) for c in callbacks)  # the defaults stay
