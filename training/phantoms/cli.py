"""``cxrclip phantom generate|samples``: synthetic chest X-ray studies from the command line."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from training.phantoms.dataset import SPLIT_CHOICES, GenerateOptions, generate_dataset


def _progress(done: int, total: int) -> None:
    if done == total or done % max(1, total // 20) == 0:
        print(f"\r{done}/{total} studies", end="" if done < total else "\n",
              file=sys.stderr, flush=True)


def run_generate(args: argparse.Namespace) -> int:
    """Handler of ``phantom generate``."""
    opts = GenerateOptions(out=Path(args.out), seed=args.seed, size=args.size,
                           dicom_size=args.dicom_size, png=args.png or args.no_dicom,
                           dicom=not args.no_dicom, split=args.split,
                           fracture_twins=args.fracture_twins)
    start = time.perf_counter()
    generate_dataset(opts, args.studies, workers=args.workers, progress=_progress)
    took = time.perf_counter() - start
    print(f"wrote {args.studies} studies to {opts.out} in {took:.1f} s "
          f"({args.studies / took:.1f} studies/s)")
    return 0


def run_samples(args: argparse.Namespace) -> int:
    """Handler of ``phantom samples``."""
    from training.phantoms.samples import generate_sample_studies

    paths = generate_sample_studies(Path(args.out), size=args.size)
    print(f"wrote {len(paths)} sample DICOM files to {args.out}")
    return 0


def run_pair(args: argparse.Namespace) -> int:
    """Handler of ``phantom pair``."""
    from training.phantoms.samples import write_pair

    paths = write_pair(Path(args.out), args.seed, args.index, size=args.size)
    print(f"wrote {len(paths)} DICOM files (current + prior) to {args.out}")
    return 0


def run_sheet(args: argparse.Namespace) -> int:
    """Handler of ``phantom sheet``."""
    from training.phantoms.samples import contact_sheet

    print(f"wrote {contact_sheet(Path(args.out), tile=args.tile)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``phantom`` sub-command (entry point of group ``cxrclip.commands``)."""
    parser = subparsers.add_parser(
        "phantom", help="generate synthetic chest X-ray phantom studies (demos/tests only)")
    sub = parser.add_subparsers(dest="phantom_command", required=True)
    gen = sub.add_parser("generate", help="write DICOM + PNG + labels + manifest")
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--studies", type=int, default=100, help="number of studies")
    gen.add_argument("--seed", type=int, default=0, help="seed; same seed = identical files")
    gen.add_argument("--png", action="store_true",
                     help="also write the 8-bit PNG cache and the training manifest")
    gen.add_argument("--no-dicom", action="store_true",
                     help="skip DICOM (PNG + manifest only; fastest for training)")
    gen.add_argument("--size", type=int, default=512, help="PNG (training) image size")
    gen.add_argument("--dicom-size", type=int, default=None,
                     help="DICOM image size (default: --size)")
    gen.add_argument("--workers", type=int, default=2, help="worker processes")
    gen.add_argument("--split", choices=SPLIT_CHOICES, default="hash",
                     help="'hash' = 90/5/5 by study id, or put every study in one split")
    gen.add_argument("--fracture-twins", action="store_true",
                     help="also write each study with a rib fracture without it (id + '-intact', same "
                          "split; PNG only), for training with data.twin_suffix")
    gen.set_defaults(func=run_generate)
    smp = sub.add_parser("samples", help="regenerate the bundled assets/sample_studies")
    smp.add_argument("--out", default="assets/sample_studies")
    smp.add_argument("--size", type=int, default=1024)
    smp.set_defaults(func=run_samples)
    pair = sub.add_parser("pair", help="write a current study and its prior (same patient, "
                          "earlier date; a right effusion smaller, a left pneumothorax then)")
    pair.add_argument("--out", required=True, help="output folder (current/ and prior/)")
    pair.add_argument("--seed", type=int, default=0, help="patient seed (anatomy, findings)")
    pair.add_argument("--index", type=int, default=0, help="study index within the seed")
    pair.add_argument("--size", type=int, default=1024, help="DICOM image size")
    pair.set_defaults(func=run_pair)
    sheet = sub.add_parser("sheet", help="write the documentation contact sheet (PNG)")
    sheet.add_argument("--out", default="docs/phantoms.png")
    sheet.add_argument("--tile", type=int, default=160)
    sheet.set_defaults(func=run_sheet)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m training.phantoms``)."""
    parser = argparse.ArgumentParser(prog="cxrclip")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
