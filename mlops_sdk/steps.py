"""Pipeline steps: ``@mlops.step`` functions, their code fingerprint and their cache key.

>>> import mlops_sdk as mlops
>>> @mlops.step
... def prepare(n_rows: int = 100):
...     return list(range(n_rows))
>>> @mlops.step(name="fit")
... def fit_model(prepare, C: float = 1.0):
...     return {"n": len(prepare), "C": C}
>>> fit_model.name, fit_model.parameters, fit_model.defaults
('fit', ('prepare', 'C'), {'C': 1.0})

A parameter named after another step of the pipeline receives that step's
output; the other parameters are params (JSON values; defaults from the
signature). The pure functions here (:func:`code_fingerprint`,
:func:`cache_key`) have no I/O, so hypothesis tests them directly.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import sys
import textwrap
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, overload

from mlops_sdk.errors import InvalidValue
from mlops_sdk.validation import to_param_value, validate_name

CACHE_KEY_VERSION = 1
#: module-name prefix of pipeline files the CLI loads by path (workers load them by file again)
FILE_MODULE_PREFIX = "_mlops_pipeline_file_"

_all_steps: weakref.WeakValueDictionary[int, Step] = weakref.WeakValueDictionary()


class Step:
    """A function decorated with ``@mlops.step``; calling it calls the function unchanged."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        cache: bool = True,
        resources: Mapping[str, Any] | None = None,
    ) -> None:
        if not inspect.isfunction(fn) or fn.__name__ == "<lambda>":
            raise InvalidValue(f"@mlops.step decorates a function defined with def, got {fn!r}")
        if not isinstance(cache, bool):
            raise InvalidValue(f"cache must be True or False, got {cache!r}")
        self.fn = fn
        self.name = validate_name("step name", name if name is not None else fn.__name__)
        self.cache = cache
        self.resources = dict(resources or {})
        self.signature = inspect.signature(fn)
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise InvalidValue(
                    f"step {self.name!r}: parameter {p.name!r} must be a plain named parameter "
                    "(no *args, **kwargs or positional-only parameters), so inputs and params can be matched by name"
                )
        functools.update_wrapper(self, fn)
        _all_steps[id(self)] = self

    @property
    def parameters(self) -> tuple[str, ...]:
        """Every parameter name, in signature order."""
        return tuple(self.signature.parameters)

    @functools.cached_property
    def defaults(self) -> dict[str, Any]:
        """Default values of the parameters that have one (checked to be JSON values)."""
        out = {}
        for p in self.signature.parameters.values():
            if p.default is not p.empty:
                try:
                    out[p.name] = to_param_value(p.name, p.default)
                except InvalidValue as exc:
                    raise InvalidValue(f"step {self.name!r}: default of {p.name!r} is not a JSON value: {exc}") from exc
        return out

    @functools.cached_property
    def code_hash(self) -> str:
        """sha256 of the function's normalised code (see :func:`code_fingerprint`)."""
        return hashlib.sha256(code_fingerprint(self.fn).encode()).hexdigest()

    def ref(self) -> dict[str, str]:
        """How another process finds this step again: module, attribute name and source file."""
        module = self.fn.__module__
        qualname = self.fn.__qualname__
        if "<locals>" in qualname:
            raise InvalidValue(
                f"step {self.name!r} ({qualname}) is defined inside a function; define it at the top level "
                "of a module so a job process can import it, or run the pipeline in-process (compute=None)"
            )
        source = inspect.getsourcefile(self.fn)
        if (module == "__main__" or module.startswith(FILE_MODULE_PREFIX)) and not source:
            raise InvalidValue(f"step {self.name!r} is defined in an interactive session; move it into a .py file")
        return {"module": module, "qualname": qualname, "file": str(Path(source).resolve()) if source else ""}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Step {self.name!r} ({self.fn.__module__}.{self.fn.__qualname__})>"


def known_step_names() -> set[str]:
    """Names of every step defined in this process (to report a missing upstream step)."""
    return {s.name for s in list(_all_steps.values())}


@overload
def step(fn: Callable[..., Any], /) -> Step: ...
@overload
def step(
    *, name: str | None = None, cache: bool = True, resources: Mapping[str, Any] | None = None
) -> Callable[[Callable[..., Any]], Step]: ...
def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    cache: bool = True,
    resources: Mapping[str, Any] | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make ``fn`` a pipeline step: ``@mlops.step`` or ``@mlops.step(name=..., cache=False)``.

    ``cache=False`` runs the step every time. ``resources`` (``{"cpus": 2}``)
    are passed to the compute backend when the pipeline runs with ``compute=``.
    """
    if fn is not None:
        return Step(fn, name=name, cache=cache, resources=resources)

    def decorate(f: Callable[..., Any]) -> Step:
        return Step(f, name=name, cache=cache, resources=resources)

    return decorate


# -- pure parts: fingerprint and cache key ----------------------------------------------------
def code_fingerprint(fn: Callable[..., Any]) -> str:
    """The function's code, normalised: its AST without decorators, docstring or its own name.

    Comments, blank lines, formatting and the docstring do not change it; any
    change to the body, the parameters or the defaults does. Without source
    (built in a REPL), the compiled bytecode and constants stand in.
    """
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        code = fn.__code__
        return "bytecode:" + code.co_code.hex() + repr(code.co_consts) + repr(code.co_names)
    node = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None)
    if node is None:
        return ast.dump(tree)
    node.decorator_list = []
    node.name = ""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]
    return f"py{sys.version_info[0]}:" + ast.dump(node)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def cache_key(name: str, code_hash: str, params: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """sha256 over the step's name, code hash, resolved params and its inputs' content hashes.

    >>> a = cache_key("fit", "c0de", {"C": 1.0, "n": 2}, {"prepare": "ab12"})
    >>> a == cache_key("fit", "c0de", {"n": 2, "C": 1.0}, {"prepare": "ab12"})
    True
    >>> a == cache_key("fit", "c0de", {"C": 0.5, "n": 2}, {"prepare": "ab12"})
    False
    """
    payload = {"v": CACHE_KEY_VERSION, "step": name, "code": code_hash, "params": dict(params), "inputs": dict(inputs)}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def load_step(ref: Mapping[str, str]) -> Step:
    """The :class:`Step` that :meth:`Step.ref` described (in a job process)."""
    import importlib
    import runpy

    module, qualname, file = ref["module"], ref["qualname"], ref.get("file") or ""
    obj: Any
    if module == "__main__" or module.startswith(FILE_MODULE_PREFIX):
        namespace = runpy.run_path(file, run_name="__mlops_job__")
        obj = namespace[qualname.split(".")[0]]
        parts = qualname.split(".")[1:]
    else:
        obj = importlib.import_module(module)
        parts = qualname.split(".")
    for part in parts:
        obj = getattr(obj, part)
    if isinstance(obj, Step):
        return obj
    found = next((s for s in list(_all_steps.values()) if s.fn is obj), None)
    if found is None:
        raise InvalidValue(f"{module}:{qualname} is not a step (decorate it with @mlops.step)")
    return found
