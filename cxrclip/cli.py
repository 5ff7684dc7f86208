"""The ``cxrclip`` command line.

Owns ``convert-official``, ``export-onnx`` and ``info``; ``score`` and ``bank`` come from
``cxrclip.engine_cli``; further commands (``train``, ``eval``, ``prepare``,
``phantom``) are discovered from the entry-point group ``cxrclip.commands``.
Each provider is a function ``register(subparsers)`` that adds a sub-parser
whose ``func`` default is a handler ``(args) -> int``. A provider that fails
to import only makes its command unavailable, reported when it is asked for.
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points
from collections.abc import Callable, Sequence

from cxrclip.extras import TRAIN_INSTALL, missing_train_module, train_extra_message

ENTRY_POINT_GROUP = "cxrclip.commands"
# Errors that mean "the user asked for something that cannot be done": one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, FileExistsError, ValueError,
                                                 PermissionError, NotADirectoryError)


def _cmd_convert_official(args: argparse.Namespace) -> int:
    import torch

    from cxrclip.convert_official import convert_official

    dtype = torch.float16 if args.fp16 else None
    model_id = convert_official(args.checkpoint, args.out_dir, args.text_encoder, args.backbone, dtype,
                                onnx=not args.no_onnx)
    from pathlib import Path

    exported = (Path(args.out_dir) / "onnx" / "export.json").is_file()
    print(f"wrote {args.out_dir} (model id {model_id}{', with ONNX exports' if exported else ''})")
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from cxrclip.onnx_export import export_onnx

    info = export_onnx(args.model_dir, opset=args.opset)
    _write_prompt_embeddings(args.model_dir)
    parity = info["parity"]
    sizes = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in info["files"].items())
    print(f"wrote {args.model_dir}/onnx ({sizes}; opset {info['opset']}) and a new MANIFEST.sha256")
    print(f"parity vs torch: image max|diff| {parity['image_embedding_max_abs']:.2e}, text max|diff| "
          f"{parity['text_embedding_max_abs']:.2e}, probability max|diff| {parity['probability_max_abs']:.2e}, "
          f"token ids {'identical' if parity['token_ids_identical'] else 'DIFFER'}")
    return 0


def _write_prompt_embeddings(model_dir: str) -> None:
    """Ship the zero-shot prompt embeddings of the new ONNX text tower in the folder."""
    from cxrclip.prompt_cache import ship_with_onnx_exports

    print(f"wrote {ship_with_onnx_exports(model_dir)} (zero-shot prompt embeddings)")


def _onnx_summary(model_dir: str) -> str:
    """One line on the folder's ONNX exports: what `Engine.load(runtime="auto")` will use and why."""
    from cxrclip.runtime_onnx import read_export_info, unavailable_reason

    reason = unavailable_reason(model_dir)
    if reason:
        return f"torch runtime ({reason})"
    info = read_export_info(model_dir)
    return (f"ONNX Runtime (opset {info['opset']}, exported {info['created']}, parity max |dp| "
            f"{info['parity']['probability_max_abs']:.1e})")


def _info_dict(model_dir: str) -> dict:
    from pathlib import Path

    from cxrclip.checkpoint import MANIFEST_FILE, check_model_folder, read_card

    data = check_model_folder(model_dir)  # raises ModelFolderError naming the file and the fix
    manifest = "files match " + MANIFEST_FILE if (Path(model_dir) / MANIFEST_FILE).is_file() else "no manifest"
    return {"path": model_dir, "check": f"ok ({manifest})", "model_id": data.get("model_id"),
            "format_version": data["format_version"], "dtype": data.get("dtype"),
            "created": data.get("created"), "text_encoder_source": data.get("text_encoder", {}).get("source"),
            "model": data["model"], "card": read_card(model_dir).to_dict(), "runtime": _onnx_summary(model_dir)}


def _cmd_info(args: argparse.Namespace) -> int:
    info = _info_dict(args.model_dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    model, card = info["model"], info["card"]
    pre = model["preprocess"]
    resize = (f"{pre.get('interpolation', 'bicubic')} resize, long side {pre.get('resize_rounding', 'round')}, "
              f"crop offset {pre.get('crop_offset', 'floor')}, {pre.get('resize_dtype', 'float32')}")
    rows = [("check", info["check"]), ("model id", info["model_id"]), ("format", f"v{info['format_version']} ({info['dtype']})"),
            ("created", info["created"]), ("image encoder", model["image"]["name"]),
            ("text encoder", f"{info['text_encoder_source']} (pooling {model['text']['pooling']})"),
            ("projection", f"{model['projection']['kind']} -> {model['projection']['dim']}"),
            ("preprocess", f"shorter side {model['preprocess']['resize_shorter']}, crop "
                           f"{model['preprocess']['image_size']}, mean {model['preprocess']['mean']}, "
                           f"std {model['preprocess']['std']}"),
            ("resize", resize), ("runtime", info["runtime"]),
            ("card", card["title"]), ("source", card["source"]), ("data", card["data"])]
    rows += [(f"metric {k}", v) for k, v in card["metrics"].items()]
    for label, value in rows:
        if value not in (None, ""):
            print(f"{label:>14}: {value}")
    return 0


def _add_core_commands(sub: argparse._SubParsersAction) -> None:
    conv = sub.add_parser("convert-official", help="convert a published CXR-CLIP .tar checkpoint",
                          description="Convert r50_*/swint_*.tar to a cxrclip model directory.")
    conv.add_argument("checkpoint", help="official checkpoint file (e.g. r50_mcc.tar)")
    conv.add_argument("out_dir", help="output model directory")
    conv.add_argument("--text-encoder", required=True,
                      help="local transformers directory of Bio_ClinicalBERT (config + tokenizer)")
    conv.add_argument("--backbone", choices=["auto", "r50", "swint"], default="auto")
    conv.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    conv.add_argument("--no-onnx", action="store_true",
                      help="skip the ONNX exports (written by default, as `cxrclip export-onnx` does)")
    conv.set_defaults(func=_cmd_convert_official)
    export = sub.add_parser("export-onnx", help="write ONNX exports of a model's towers (for ONNX Runtime)",
                            description="Write MODEL_DIR/onnx/ (image.onnx, text.onnx, tokenizer.json, "
                                        "export.json with a parity check vs torch) and rewrite MANIFEST.sha256. "
                                        "Engine.load(runtime='auto') then uses ONNX Runtime.")
    export.add_argument("model_dir")
    export.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    export.set_defaults(func=_cmd_export_onnx)
    info = sub.add_parser("info", help="show a model directory's config and card")
    info.add_argument("model_dir")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=_cmd_info)


CORE_COMMANDS = ("convert-official", "export-onnx", "info")
ENGINE_COMMANDS = ("score", "bank")


def _providers(command: str | None) -> list[tuple[str, Callable[[], Callable]]]:
    """Providers to import: only the one that owns ``command``, or all (for help)."""
    if command in CORE_COMMANDS:
        return []
    everything = [("score", _engine_register), ("index", _index_register)]
    everything += [(ep.name, ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    if command in ENGINE_COMMANDS:
        return everything[:1]
    if command == "index":
        return everything[1:2]
    chosen = [p for p in everything if p[0] == command]
    return chosen or everything


def _register_providers(sub: argparse._SubParsersAction, command: str | None) -> dict[str, str]:
    """Call the needed ``register(subparsers)`` functions; returns {command: reason} for failures."""
    unavailable: dict[str, str] = {}
    for name, load in _providers(command):
        try:
            load()(sub)
        # A broken optional part must not take the whole CLI down; its reason is
        # shown when (and only when) its command is requested.
        except Exception as exc:  # noqa: BLE001
            module = missing_train_module(exc)
            unavailable[name] = (train_extra_message(f"`cxrclip {name}`", module) if module
                                 else f"{type(exc).__name__}: {exc}")
            if name == "score":
                unavailable["bank"] = unavailable[name]
    return unavailable


def _missing_extra_text(command: str, exc: ImportError) -> str:
    """The message for a command that hit a missing [train] module (keeps a message that names the fix)."""
    if TRAIN_INSTALL in str(exc):
        return str(exc)
    return train_extra_message(f"`cxrclip {command}`", missing_train_module(exc) or "torch")


def _engine_register() -> Callable:
    from cxrclip.engine_cli import register

    return register


def _index_register() -> Callable:
    from cxrclip.index.cli import register

    return register


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The parser and the commands that could not be registered.

    With ``command`` only its provider is imported (fast start); without, all are.
    """
    parser = argparse.ArgumentParser(prog="cxrclip", description="CXR-CLIP model tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_core_commands(sub)
    unavailable = _register_providers(sub, command)
    for name in unavailable:
        if name not in sub.choices:
            sub.add_parser(name, help="(unavailable)", add_help=False)
    return parser, unavailable


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 = success)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, unavailable = build_parser(argv[0] if argv else None)
    if argv and argv[0] in unavailable:
        reason = unavailable[argv[0]]
        if TRAIN_INSTALL in reason:
            print(f"cxrclip: {reason.replace('`cxrclip score`', f'`cxrclip {argv[0]}`')}", file=sys.stderr)
        else:
            print(f"cxrclip: the {argv[0]!r} command is unavailable: {reason}", file=sys.stderr)
        return 2
    return _run(parser, argv)


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args``, except that a command whose defaults name a list in
    ``trailing_positionals`` also takes positionals given after its options
    (``cxrclip train CONFIG --resume key=value``: argparse alone rejects the override)."""
    args, extra = parser.parse_known_args(argv)
    trailing = getattr(args, "trailing_positionals", None)
    if extra:
        if trailing is None or any(item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, trailing).extend(extra)
    return args


def _run(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    try:
        args = parse_args(parser, argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"cxrclip: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:  # a viewer-only install asked for a torch-side feature
        if missing_train_module(exc) is None:
            raise
        print(f"cxrclip: {_missing_extra_text(args.command, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cxrclip: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
