"""Read the published CXR-CLIP checkpoints' pickles as plain data, never running pickled code.

The official trainer ``torch.save``s ``{model, optimizer, scheduler, config, epoch,
train_loss}``. Its config went through a helper that turns only omegaconf
``DictConfig`` nodes into dicts, so every list in it is still an omegaconf
``ListConfig`` - and through its ``_parent`` link the whole original
``DictConfig`` tree, with omegaconf's node and metadata objects, ``typing.Any``
and ``collections.defaultdict`` - inside the pickle. ``train_loss`` may be a
numpy scalar. torch's ``weights_only`` loader refuses all of these.

This module is a ``pickle_module`` for ``torch.load``: its :class:`Unpickler`
resolves pickle globals only through a fixed table. torch's own tensor and
storage types come from the table that torch's ``weights_only`` loader uses;
omegaconf containers and nodes, omegaconf metadata, typing names, builtin type
names, ``defaultdict`` and numpy scalars/dtypes are mapped to inert stand-in
classes defined here (no omegaconf or numpy code is imported or run). Anything
else raises :class:`RefusedGlobal` before any object is built. :func:`to_plain`
then turns the stand-ins into plain Python data: ``DictConfig`` -> dict,
``ListConfig`` -> list, nodes -> their value, numpy scalars -> float/int/bool;
omegaconf metadata and parent links are dropped.
"""
from __future__ import annotations

import _compat_pickle
import pickle
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

__all__ = ["RefusedGlobal", "Unpickler", "load", "to_plain"]


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global that is not plain data; nothing was built from it."""

    def __init__(self, module: str, name: str):
        self.qualname = f"{module}.{name}"
        super().__init__(f"Unsupported global: GLOBAL {self.qualname}")


class TypeRef:
    """A type name stored as data (omegaconf metadata's ``typing.Any``, ``dict``, ...); not callable."""

    __slots__ = ("qualname",)

    def __init__(self, qualname: str):
        self.qualname = qualname

    def __repr__(self) -> str:
        return f"TypeRef({self.qualname})"


class _StandIn:
    """Base of the inert stand-ins: ``__new__`` takes any args, ``__setstate__`` only stores."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def field(self, key: str) -> Any:
        state = self.__dict__.get("_state")
        return state.get(key) if isinstance(state, dict) else None


class OmegaDict(_StandIn):
    """Stand-in for ``omegaconf.DictConfig``: its ``_content`` maps keys to nodes."""


class OmegaList(_StandIn):
    """Stand-in for ``omegaconf.ListConfig``: its ``_content`` is a list of nodes."""


class OmegaNode(_StandIn):
    """Stand-in for an omegaconf value node (``AnyNode``, ``StringNode``, ...): ``_val``."""


class OmegaMetadata(_StandIn):
    """Stand-in for omegaconf's ``Metadata``/``ContainerMetadata``; dropped by :func:`to_plain`."""


# numpy dtype strings a scalar may have, with their struct format (no object/void/str dtypes).
_NUMPY_KINDS = {"f2": "e", "f4": "f", "f8": "d", "i1": "b", "i2": "h", "i4": "i", "i8": "q",
                "u1": "B", "u2": "H", "u4": "I", "u8": "Q", "b1": "?"}


class NumpyDType:
    """Stand-in for ``numpy.dtype(kind, align, copy)`` of a numeric kind; byte order from its state."""

    def __init__(self, kind: Any = "f8", align: Any = False, copy: Any = True):
        if kind not in _NUMPY_KINDS:
            raise pickle.UnpicklingError(f"numpy dtype {kind!r} is not a plain number type; "
                                         f"accepted: {sorted(_NUMPY_KINDS)}")
        self.kind = kind
        self.byteorder = "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = state[1]

    def __repr__(self) -> str:
        return f"NumpyDType({self.kind})"


def _numpy_scalar(dtype: Any, raw: Any = b"") -> float | int | bool:
    """``numpy.core.multiarray.scalar(dtype, bytes)`` decoded with ``struct`` to a Python number."""
    if not isinstance(dtype, NumpyDType) or not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError("a numpy scalar in the file is not a plain number")
    order = ">" if dtype.byteorder == ">" else "<"
    fmt = order + _NUMPY_KINDS[dtype.kind]
    if struct.calcsize(fmt) != len(raw):
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype.kind} has {len(raw)} bytes")
    value = struct.unpack(fmt, bytes(raw))[0]
    return float(value) if dtype.kind.startswith("f") else value


def _plain_defaultdict(*args: Any) -> dict:
    """``collections.defaultdict(factory)`` as a plain dict (the factory is a type name, ignored)."""
    return {}


_OMEGACONF = {
    "omegaconf.dictconfig.DictConfig": OmegaDict,
    "omegaconf.listconfig.ListConfig": OmegaList,
    "omegaconf.base.Metadata": OmegaMetadata,
    "omegaconf.base.ContainerMetadata": OmegaMetadata,
    **{f"omegaconf.nodes.{name}": OmegaNode for name in (
        "AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "BytesNode",
        "InterpolationResultNode", "ValueNode")},
}
_TYPE_NAMES = [f"typing.{n}" for n in ("Any", "Dict", "List", "Tuple", "Optional", "Union")]
_TYPE_NAMES += [f"builtins.{n}" for n in ("dict", "list", "tuple", "int", "float", "str", "bool",
                                           "bytes", "object", "NoneType")]
_TYPE_NAMES += [f"numpy.dtypes.{n}DType" for n in (
    "Float16", "Float32", "Float64", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32",
    "UInt64", "Bool")]
_NUMPY = {
    "numpy.dtype": NumpyDType,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "collections.defaultdict": _plain_defaultdict,
}


def _torch_globals() -> dict[str, Any]:
    """The globals torch's own ``weights_only`` loader admits (tensors, storages, dtypes, ...)."""
    from torch import _weights_only_unpickler

    return dict(_weights_only_unpickler._get_allowed_globals())


def allowed_globals() -> dict[str, Any]:
    """Qualified name -> object for every global a checkpoint pickle may name."""
    table = _torch_globals()
    table.update(_OMEGACONF)
    table.update(_NUMPY)
    table.update({name: TypeRef(name) for name in _TYPE_NAMES})
    return table


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves globals only through :func:`allowed_globals`."""

    _table: dict[str, Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (``__builtin__.long``, in protocol-2 pickles such as torch.save's), mapped as
        # pickle's own find_class does; the mappings only name modules that Python 3 does not have.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if Unpickler._table is None:
            Unpickler._table = allowed_globals()
        found = Unpickler._table.get(f"{module}.{name}")
        if found is None:
            raise RefusedGlobal(module, name)
        return found


def load(file: BinaryIO, **kwargs: Any) -> Any:
    """``pickle.load`` with :class:`Unpickler` (torch's legacy path calls this)."""
    return Unpickler(file, **kwargs).load()


def to_plain(obj: Any) -> Any:
    """Replace the stand-ins in a loaded object by plain dicts, lists and values."""
    return _Plain().convert(obj)


class _Plain:
    """One conversion pass; memoised by id, so shared and cyclic containers stay finite."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}

    def convert(self, obj: Any) -> Any:
        if isinstance(obj, (str, bytes, int, float, bool, type(None))):
            return obj
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        if isinstance(obj, OmegaNode):
            return self.convert(obj.field("_val"))
        if isinstance(obj, (OmegaDict, OmegaList)):
            content = obj.field("_content")
            return self.convert(content) if isinstance(content, (dict, list)) else content
        if isinstance(obj, Mapping):
            return self._fill(key, obj.items(), {}, lambda out, kv: out.__setitem__(
                self.convert(kv[0]), self.convert(kv[1])))
        if isinstance(obj, list):
            return self._fill(key, obj, [], lambda out, v: out.append(self.convert(v)))
        if isinstance(obj, tuple):
            return tuple(self.convert(v) for v in obj)
        if isinstance(obj, (TypeRef, OmegaMetadata)):
            return getattr(obj, "qualname", None)
        if isinstance(obj, NumpyDType):
            return obj.kind
        return obj  # tensors, torch types, sets, ...

    def _fill(self, key: int, items: Any, out: Any, add: Any) -> Any:
        self.memo[key] = out
        for item in list(items):
            add(out, item)
        return out
