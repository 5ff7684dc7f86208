"""`cxrclip train CONFIG --resume key=value`: overrides may follow the options."""
from __future__ import annotations

import pytest

from cxrclip.cli import build_parser, parse_args


@pytest.mark.parametrize("argv", [["train", "c.yaml", "--resume", "train.epochs=2", "optim.lr=1e-4"],
                                  ["train", "c.yaml", "train.epochs=2", "--resume", "optim.lr=1e-4"],
                                  ["train", "c.yaml", "train.epochs=2", "optim.lr=1e-4", "--resume"]])
def test_overrides_before_or_after_resume(argv):
    parser, _ = build_parser("train")
    args = parse_args(parser, argv)
    assert args.config == "c.yaml" and args.resume
    assert args.overrides == ["train.epochs=2", "optim.lr=1e-4"]


def test_an_unknown_option_is_still_a_usage_error(capsys):
    parser, _ = build_parser("train")
    with pytest.raises(SystemExit) as exc:
        parse_args(parser, ["train", "c.yaml", "--resume", "--bogus"])
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    parser, _ = build_parser("info")
    with pytest.raises(SystemExit):
        parse_args(parser, ["info", "dir", "extra"])  # other commands take no trailing positionals
