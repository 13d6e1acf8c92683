"""Checkpoint files and key checks: one reader (``load_checkpoint``) and one check (``check_state_dict``) for the
networks, ``ResKDModule.load_state_dict`` and the predictor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reskd_lightning.models import TSN, load_weights
from reskd_lightning.models.weights import WeightsMismatchError, check_state_dict, load_checkpoint


def test_weight_mismatch_names_the_file_and_the_keys(tmp_path: Path) -> None:
    torch.save(TSN(3, backbone="resnet34").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match=r"r34.pth do not match TSN:\n  unexpected keys \(\d+\): backbone.layer1.2"):
        load_weights(TSN(3, backbone="resnet18"), tmp_path / "r34.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_weights(TSN(3, backbone="resnet18"), tmp_path / "nope.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_weights(TSN(3, backbone="resnet18"), tmp_path / "garbage.pth")


def test_check_state_dict_names_missing_unexpected_and_wrongly_shaped_keys() -> None:
    expected = {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2), "b.weight": torch.zeros(1)}
    check_state_dict(expected, dict(expected), "f.ckpt", "Net")  # a match: nothing raised
    given = {"a.weight": torch.zeros(3, 3), "c.weight": torch.zeros(1), "b.weight": torch.zeros(1)}
    with pytest.raises(WeightsMismatchError) as info:
        check_state_dict(expected, given, "f.ckpt", "Net", hint="how to fix it")
    assert str(info.value) == (
        "weights from f.ckpt do not match Net:\n"
        "  missing keys (1): a.bias\n"
        "  unexpected keys (1): c.weight\n"
        "  wrong shapes (1): a.weight: file (3, 3) vs model (2, 3)\n"
        "  (how to fix it)"
    )
    error = info.value
    assert (error.source, error.missing, error.unexpected) == ("f.ckpt", ["a.bias"], ["c.weight"])
    assert error.wrong_shapes == {"a.weight": ((3, 3), (2, 3))}
    assert isinstance(error, ValueError) and isinstance(error, RuntimeError)  # bad weights; torch's load error


def test_check_state_dict_ignores_the_given_prefixes_only() -> None:
    expected = {"student.w": torch.zeros(1), "teacher.w": torch.zeros(1)}
    check_state_dict(expected, {"student.w": torch.zeros(1), "distill.w": torch.zeros(1)}, "f", "M",
                     ignore_missing=("teacher.",), ignore_unexpected=("distill.",))  # fmt: skip
    with pytest.raises(WeightsMismatchError, match=r"missing keys \(1\): teacher.w$"):
        check_state_dict(expected, {"student.w": torch.zeros(1)}, "f", "M", ignore_missing=("distill.",))
    with pytest.raises(WeightsMismatchError, match=r"unexpected keys \(1\): other.w$"):
        check_state_dict(expected, {**expected, "other.w": torch.zeros(1)}, "f", "M", ignore_unexpected=("distill.",))


def test_load_checkpoint_reads_tensor_files_and_lightning_checkpoints(tmp_path: Path) -> None:
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "plain.pth")
    assert torch.equal(load_checkpoint(tmp_path / "plain.pth")["state_dict"]["w"], torch.ones(2))
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"path": Path("x")}}, tmp_path / "pl.ckpt")
    assert load_checkpoint(tmp_path / "pl.ckpt")["hyper_parameters"] == {"path": Path("x")}  # pickled objects
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*gone.ckpt' does not exist"):
        load_checkpoint(tmp_path / "gone.ckpt")


def test_an_empty_checkpoint_file_says_so(tmp_path: Path) -> None:
    # A save killed before it wrote a byte leaves a 0-byte file: the error says "empty file", not a pickle error.
    (tmp_path / "last.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"last\.ckpt' is an empty file \(0 bytes\)"):
        load_checkpoint(tmp_path / "last.ckpt")
    with pytest.raises(ValueError, match="is an empty file"):
        load_weights(TSN(3, backbone="resnet18"), tmp_path / "last.ckpt")
