"""PyTorch modules, saved as a ``torch.export`` program (no pickle of your code).

``save`` traces the module with :func:`torch.export.export` on the input
example, with a dynamic batch dimension, and writes ``model.pt2`` with
:func:`torch.export.save`; with safetensors installed it also writes the
weights as ``state_dict.safetensors`` (for reuse outside mlops). ``load``
returns ``torch.export.load(...).module()``: a callable module that needs
neither your model's class nor its source.

``torch.export.load`` itself is not pickle-free in torch 2.13: the sample
inputs stored in the archive are read with ``torch.load(weights_only=True)``
and, if that fails, again with ``weights_only=False``; weights or constants
flagged ``use_pickle`` and "opaque" constants are unpickled outright;
AOTInductor entries load compiled shared libraries; and graph nodes may name
any callable reachable from ``torch``. So before calling it, :func:`check_pt2`
inspects the archive and refuses (``UnsafeModel``) anything but plain tensor
payloads, sample inputs that load with ``weights_only=True``, and graph nodes
that call registered torch operators.

A module that ``torch.export`` cannot trace can be saved whole as a pickle with
``allow_pickle=True``; loading it then needs ``allow_pickle=True`` too.
"""

from __future__ import annotations

import io
import json
import operator
import re
import weakref
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_sdk.errors import FlavorError, UnsafeModel
from mlops_sdk.flavors._common import comes_from, libraries, public_version, require
from mlops_sdk.flavors.base import Flavor

if TYPE_CHECKING:
    import torch

EXPORT_FILE = "model.pt2"
WEIGHTS_FILE = "state_dict.safetensors"
PICKLE_FILE = "model.pth"
INSTALL = "-c constraints.txt torch  (or 'mlops-sdk[torch]')"

# The dtype each loaded module expects, so predict() can convert numpy input.
_INPUT_DTYPES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _torch() -> Any:
    return require("torch", "torch", INSTALL)


class TorchFlavor(Flavor):
    """``torch.nn.Module`` models."""

    name = "torch"
    priority = 20

    def recognizes(self, obj: Any) -> bool:
        if not comes_from(obj, "torch"):
            return False
        import torch

        return isinstance(obj, torch.nn.Module)

    def save(
        self, obj: Any, path: Path, *, input_example: Any = None, allow_pickle: bool = False
    ) -> dict[str, Any]:
        _torch()
        import torch

        if input_example is None:
            raise FlavorError(
                "the torch flavor needs input_example= (a batch of model input, e.g. X[:5]) to export the "
                "model with torch.export"
            )
        obj = _on_cpu(obj)
        example = _example_tensor(obj, input_example).cpu()
        path = Path(path)
        meta: dict[str, Any] = {
            "input": {
                "dtype": str(example.dtype).removeprefix("torch."),
                "shape": [-1, *example.shape[1:]],
            },
            "libraries": libraries("torch"),
        }
        try:
            program = _export(obj, example)
        except Exception as exc:
            if not allow_pickle:
                raise FlavorError(
                    f"torch.export could not export {type(obj).__qualname__}: {_short(exc)}. Make the model "
                    "exportable (https://pytorch.org/docs/stable/export.html), or pass allow_pickle=True to "
                    "save the whole module as a pickle (loading it will need allow_pickle=True too)."
                ) from exc
            try:
                torch.save(obj, path / PICKLE_FILE)
            except Exception as pickle_exc:
                raise FlavorError(
                    f"could not pickle {type(obj).__qualname__}: {pickle_exc}"
                ) from pickle_exc
            return {
                **meta,
                "format": "pickle",
                "file": PICKLE_FILE,
                "reason": f"torch.export failed: {_short(exc)}",
            }
        torch.export.save(program, path / EXPORT_FILE)
        meta.update(format="torch.export", file=EXPORT_FILE, state_dict=None)
        try:
            from safetensors.torch import save_model
        except ImportError:
            pass
        else:
            try:
                save_model(obj, str(path / WEIGHTS_FILE))
                meta["state_dict"] = WEIGHTS_FILE
            except Exception as exc:  # an extra copy of the weights: recorded, not fatal
                (path / WEIGHTS_FILE).unlink(missing_ok=True)
                meta["state_dict_error"] = _short(exc)
        return meta

    def load(self, path: Path, meta: dict[str, Any], *, allow_pickle: bool = False) -> Any:
        _torch()
        import torch

        fmt = meta.get("format")
        path = Path(path)
        if fmt == "pickle":
            if not allow_pickle:
                raise UnsafeModel(
                    "this torch model was saved as a pickled module; loading it runs whatever code the file "
                    "names. Pass allow_pickle=True only if you trust where the model came from."
                )
            try:
                module = torch.load(path / PICKLE_FILE, weights_only=False)
            except Exception as exc:
                raise FlavorError(f"could not unpickle {path / PICKLE_FILE}: {exc!r}") from exc
            if not isinstance(module, torch.nn.Module):
                raise FlavorError(
                    f"{path / PICKLE_FILE} holds a {type(module).__qualname__}, not a torch module"
                )
            module.eval()
        elif fmt == "torch.export":
            file = path / EXPORT_FILE
            try:
                data = file.read_bytes()  # checked and loaded from the same bytes
            except FileNotFoundError as exc:
                raise FlavorError(f"{EXPORT_FILE} is missing from {path}") from exc
            check_pt2(data, file)
            try:
                module = torch.export.load(io.BytesIO(data)).module()
            except Exception as exc:
                raise FlavorError(f"could not load the exported program {file}: {exc}") from exc
        else:
            raise FlavorError(
                f"unknown format {fmt!r} for a torch model (expected 'torch.export' or 'pickle')"
            )
        dtype = getattr(torch, str(meta.get("input", {}).get("dtype", "")), None)
        if isinstance(dtype, torch.dtype):
            _INPUT_DTYPES[module] = dtype
        return module

    def predict(self, model: Any, data: Any) -> Any:
        _torch()
        import torch

        recorded = _INPUT_DTYPES.get(model)
        if recorded is not None:
            x = _to_tensor(data, recorded, always=True)
        else:  # a module that was not loaded by this flavor
            x = _to_tensor(data, _param_dtype(model), always=False)
        device = _device_of(model)
        if device is not None:
            x = x.to(device)
        with torch.no_grad():
            return _to_numpy(model(x))

    def requirements(self, meta: dict[str, Any]) -> list[str]:
        return [
            f"torch=={public_version(v)}"
            for lib, v in meta.get("libraries", {}).items()
            if lib == "torch"
        ]


def _short(exc: BaseException, limit: int = 600) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[:limit] + " …"


def _export(model: torch.nn.Module, example: torch.Tensor) -> Any:
    import torch
    from torch.export import Dim

    if example.shape[0] < 2:  # a batch of 1 would be specialised to size 1
        example = torch.cat([example, example])
    was_training = model.training
    model.eval()
    try:
        return torch.export.export(model, (example,), dynamic_shapes=({0: Dim("batch")},))
    finally:
        model.train(was_training)


def _on_cpu(model: Any) -> Any:
    """The model itself if it lives in CPU memory, else a CPU copy of it.

    A model trained on a GPU is saved from CPU memory, so the package loads
    anywhere, on a machine without a GPU too (and in the CPU-only serving
    image); move the loaded module with ``.to("cuda")`` to predict on a GPU.
    The caller's model stays where it is. Its tensors are copied straight to
    CPU memory (no second copy on the GPU, which a large model would not fit),
    and weights shared between layers stay shared.
    """
    import copy

    import torch

    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == "cpu" for t in tensors):
        return model
    memo: dict[int, Any] = {}
    for t in tensors:
        if id(t) not in memo:
            on_cpu = t.detach().cpu()
            memo[id(t)] = torch.nn.Parameter(on_cpu, t.requires_grad) if isinstance(t, torch.nn.Parameter) else on_cpu
    try:
        return copy.deepcopy(model, memo).cpu()
    except Exception as exc:
        raise FlavorError(
            f"could not copy {type(model).__qualname__} to CPU memory to save it: {_short(exc)}; "
            "move it with model.cpu() before logging it"
        ) from exc


def _param_dtype(model: Any) -> Any:
    """The dtype of the module's first floating-point parameter or buffer (None if it has none)."""
    tensors = [*getattr(model, "parameters", list)(), *getattr(model, "buffers", list)()]
    return next((t.dtype for t in tensors if t.is_floating_point()), None)


def _device_of(model: Any) -> Any:
    tensors = [*getattr(model, "parameters", list)(), *getattr(model, "buffers", list)()]
    return tensors[0].device if tensors else None


def _example_tensor(model: Any, example: Any) -> torch.Tensor:
    x = _to_tensor(example, _param_dtype(model), always=False)
    if x.ndim == 0 or x.shape[0] == 0:
        raise FlavorError(
            f"input_example must be a non-empty batch (first dimension = rows), got shape {tuple(x.shape)}"
        )
    return x


def _to_tensor(data: Any, dtype: Any, *, always: bool) -> torch.Tensor:
    """``data`` (tensor, numpy array, DataFrame, nested lists) as a tensor of ``dtype``.

    With ``always=False`` only floating-point data is cast (to the model's float
    precision); integer data such as token ids keeps its type.
    """
    import numpy as np
    import torch

    if isinstance(data, torch.Tensor):
        x = data
    else:
        if hasattr(data, "to_numpy") and callable(data.to_numpy):  # pandas
            data = data.to_numpy()
        try:
            array = np.asarray(data)
        except ValueError as exc:
            raise FlavorError(f"input is not a regular array: {exc}") from exc
        if array.dtype.kind not in "biuf":
            raise FlavorError(f"a torch model takes numbers, got an array of {array.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(array))
    if dtype is not None and x.dtype != dtype and (always or x.is_floating_point()):
        x = x.to(dtype)
    return x


def _to_numpy(out: Any) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    if isinstance(out, (list, tuple)):
        return type(out)(_to_numpy(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_numpy(v) for k, v in out.items()}
    return out


# -- inspecting a .pt2 archive before torch.export.load reads it -----------------------------
_PT2_FIXED = frozenset(
    {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
)
_NAME = r"[A-Za-z0-9_]+"
_PT2_ALLOWED = re.compile(
    rf"models/{_NAME}\.json|data/weights/{_NAME}_weights_config\.json|data/weights/weight_\d+|"
    rf"data/constants/{_NAME}_constants_config\.json|data/constants/tensor_\d+|"
    rf"data/sample_inputs/{_NAME}\.pt|extra/[^/]+"
)
# Python operators the exporter emits for symbolic sizes.
_OPERATORS = frozenset(
    {
        "getitem",
        "add",
        "sub",
        "mul",
        "truediv",
        "floordiv",
        "mod",
        "pow",
        "neg",
        "pos",
        "abs",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and_",
        "or_",
        "xor",
        "not_",
        "invert",
        "lshift",
        "rshift",
        "matmul",
    }
)
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_pt2(data: bytes, file: object = "the archive") -> None:
    """Refuse (``UnsafeModel``) a ``.pt2`` archive that ``torch.export.load`` would not read safely.

    Allowed: the archive's version files, JSON programs and payload configs, raw
    tensor payloads, sample inputs that load with ``weights_only=True``, and
    graph nodes that call registered torch operators (or a few Python operators
    on sizes). Refused: pickled payloads, custom or opaque objects, compiled
    (AOTInductor) code, legacy pickled weight files, and any other entry.
    """
    import torch

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (OSError, zipfile.BadZipFile) as exc:
        raise FlavorError(f"{file} is not a torch.export archive: {exc}") from exc
    with archive:
        names = archive.namelist()
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or any("/" not in n for n in names):
            raise UnsafeModel(f"{file}: unexpected layout (entries under {sorted(roots)})")
        root = roots.pop() + "/"
        inner = {n[len(root) :]: n for n in names}
        odd = sorted(n for n in inner if n not in _PT2_FIXED and not _PT2_ALLOWED.fullmatch(n))
        if odd:
            raise UnsafeModel(
                f"{file} holds entries mlops will not load (they could run code): {', '.join(odd[:5])}"
            )
        programs = [n for n in inner if n.startswith("models/")]
        if not programs:
            raise FlavorError(f"{file} holds no exported program")
        try:
            for name in inner:
                if name.endswith("_config.json"):
                    _check_payload_config(file, name, json.loads(archive.read(inner[name])))
            for name in programs:
                _check_graph(file, json.loads(archive.read(inner[name])), torch)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FlavorError(f"{file}: malformed archive ({exc!r})") from exc
        for name in inner:
            if name.startswith("data/sample_inputs/"):
                try:
                    torch.load(io.BytesIO(archive.read(inner[name])), weights_only=True)
                except Exception as exc:
                    raise UnsafeModel(
                        f"{file}: {name} is not plain tensors (torch would unpickle it): {exc}"
                    ) from exc


def _check_payload_config(file: object, name: str, config: dict[str, Any]) -> None:
    prefix = "weight_" if "/weights/" in name else "tensor_"
    for fqn, payload in config["config"].items():
        path_name = str(payload.get("path_name", ""))
        if payload.get("use_pickle") or not re.fullmatch(rf"{prefix}\d+", path_name):
            raise UnsafeModel(
                f"{file}: {fqn!r} is stored as {path_name!r} (a pickled or custom object)"
            )


def _check_graph(file: object, program: Any, torch: Any) -> None:
    stack = [program]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            target = item.get("target")
            if isinstance(target, str) and "inputs" in item and not _allowed_target(target, torch):
                raise UnsafeModel(
                    f"{file}: a graph node calls {target!r}, which is not a registered torch operator"
                )
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _allowed_target(target: str, torch: Any) -> bool:
    module, _, rest = target.partition(".")
    parts = rest.split(".")
    if not all(_SEGMENT.fullmatch(p) and not p.startswith("__") for p in parts):
        return False
    if module == "_operator":
        return len(parts) == 1 and parts[0] in _OPERATORS and hasattr(operator, parts[0])
    if module == "math":
        return len(parts) == 1 and not parts[0].startswith("_")
    if module != "torch" or parts[0] != "ops" or len(parts) < 3:
        return False
    obj: Any = torch.ops
    for part in parts[1:]:
        try:
            obj = getattr(obj, part)
        except (AttributeError, RuntimeError):
            return False
    return isinstance(obj, (torch._ops.OpOverload, torch._ops.HigherOrderOperator))
