"""How the lessons' exercises are checked: an `Exercise` runs a learner's answer on a few inputs
and says what is wrong, where, and which slip most likely caused it (`checks.py` lists them).

A checker never raises: an answer that is not written yet (its body is `...`, it returns None,
or raises NotImplementedError) is reported as left to do, and an answer that raises is reported
with its error. Each checker knows the typical mistakes of its exercise (`.mistakes`, pairs of a
wrong answer and its hint): when an answer computes what a known mistake computes, the hint
names that mistake. `solutions.py` holds the reference answers the checkers compare with.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from minigrad import Tensor

__all__ = ["Exercise", "Result", "describe", "difference"]


class NotDone(Exception):
    """The answer is still the exercise's blank: nothing to check yet."""


@dataclass
class Result:
    """What a checker found. `repr` is the feedback a notebook shows."""

    exercise: str
    passed: bool
    message: str
    done: bool = True

    def __repr__(self) -> str:
        mark = "✓" if self.passed else "✗" if self.done else "…"
        return f"{mark} {self.exercise}: {self.message}"


@dataclass
class Exercise:
    """One exercise: its reference answer, the inputs it is tried on, and the mistakes it recognises.

    cases() gives fresh argument tuples (answers may change their inputs); run(answer, *args)
    calls an answer (default: answer(*args)); outputs name what the answer returns, one name per
    element of a returned tuple; validate(got, want, args) may replace the comparison and return
    None or (what is wrong, its hint); errors pair an exception type with the hint it suggests.
    """

    name: str
    solution: Callable
    cases: Callable[[], list[tuple]]
    outputs: Sequence[str]
    mistakes: list[tuple[Callable, str]] = field(default_factory=list)
    errors: list[tuple[type, str]] = field(default_factory=list)
    run: Callable | None = None
    validate: Callable | None = None
    # The answers compute in float64: any correct order of operations agrees with the reference to
    # about 1e-15 relative, and the mistakes checked for are off by 1e-6 (a one-sided difference) or more.
    rtol: float = 1e-7
    atol: float = 1e-10
    fallback: str = ""

    def __call__(self, answer) -> Result:
        if answer is None:
            return Result(self.name, False, "not done yet: write it, then run the cell again.", done=False)
        cases = self.cases()
        for args in cases:
            try:
                got = self._outputs(answer, args)
            except NotDone:
                return Result(self.name, False, self._blank(), done=False)
            except Exception as error:  # the learner's code failed: report it, never raise
                return Result(self.name, False, self._raised(error, args))
            want = self._outputs(self.solution, args)
            problem = self._compare(got, want, args)
            if problem is not None:
                problem, hint = problem if isinstance(problem, tuple) else (problem, self._hint(got, args))
                hint = f" Hint: {hint}" if hint else ""
                return Result(self.name, False, f"{problem} (for {describe(self.solution, args)}).{hint}")
        tried = "the input it was tried on" if len(cases) == 1 else f"all {len(cases)} inputs it was tried on"
        return Result(self.name, True, f"right on {tried}.")

    def _outputs(self, answer, args: tuple) -> tuple:
        args = _copy(args)
        with np.errstate(all="ignore"):  # overflow in a learner's exp is reported as a wrong value, not a warning
            try:
                got = self.run(answer, *args) if self.run else answer(*args)
            except NotImplementedError:
                raise NotDone from None
        if got is None:
            raise NotDone
        if len(self.outputs) > 1:
            if not isinstance(got, tuple) or len(got) != len(self.outputs):
                raise TypeError(f"return {len(self.outputs)} values, ({', '.join(self.outputs)}), got {_kind(got)}")
            return tuple(_plain(g) for g in got)
        return (_plain(got),)

    def _compare(self, got: tuple, want: tuple, args: tuple) -> str | tuple[str, str] | None:
        if self.validate is not None:
            return self.validate(got[0], want[0], args)
        for name, g, w in zip(self.outputs, got, want):
            problem = difference(g, w, name, self.rtol, self.atol)
            if problem is not None:
                return problem
        return None

    def _hint(self, got: tuple, args: tuple) -> str | None:
        """The hint of the first known mistake that computes what the answer got in its first wrong output."""
        want = self._outputs(self.solution, args)
        first = next(i for i, (g, w) in enumerate(zip(got, want)) if difference(g, w, "", self.rtol, self.atol))
        for mistake, hint in self.mistakes:
            try:
                wrong = self._outputs(mistake, args)
            except Exception:  # this mistake fails on these inputs, so the answer did not make it
                continue
            if difference(got[first], wrong[first], "", self.rtol, self.atol) is None:
                return hint
        return self.fallback or None

    def _blank(self) -> str:
        return f"not done yet: {self.name} still returns None: write its body, then run the cell again."

    def _raised(self, error: Exception, args: tuple) -> str:
        message = f"your code raised {type(error).__name__}: {error} (for {describe(self.solution, args)})."
        for kind, hint in self.errors:
            if isinstance(error, kind):
                return f"{message} Hint: {hint}"
        return message


# ---------------------------------------------------------------- comparing and describing


def difference(got, want, name: str, rtol: float = 1e-7, atol: float = 1e-10) -> str | None:
    """None when `got` equals `want` (numbers within rtol/atol), else where and how they differ."""
    if got is None:
        return f"{name} is missing (None)"
    if isinstance(want, dict):
        return _dict_difference(got, want, name)
    if isinstance(want, tuple) and not isinstance(got, np.ndarray):
        return None if got == want else f"{name} is {got!r} where {want!r} was expected"
    if isinstance(want, list) and not isinstance(got, np.ndarray):
        return _list_difference(list(got) if isinstance(got, (list, tuple)) else got, list(want), name)
    got_array, want_array = np.asarray(got), np.asarray(want)
    if got_array.dtype == object:
        return f"{name} is {_kind(got)} where {_kind(want)} was expected"
    if got_array.shape != want_array.shape:
        return f"{name} has shape {_shape(got_array.shape)} where {_shape(want_array.shape)} was expected"
    if want_array.dtype == bool or got_array.dtype == bool:
        close = got_array == want_array
    else:
        close = np.isclose(got_array, want_array, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return None
    if want_array.ndim == 0:
        got_text, want_text = _numbers(got_array, want_array)
        return f"{name} is {got_text} where {want_text} was expected"
    index = tuple(int(i) for i in np.argwhere(~close)[0])
    where = ", ".join(map(str, index))
    got_text, want_text = _numbers(got_array[index], want_array[index])
    return f"{name} is off at [{where}]: {got_text} where {want_text} was expected"


def _list_difference(got, want: list, name: str) -> str | None:
    if not isinstance(got, list):
        return f"{name} is {_kind(got)} where a list was expected"
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"{name} differs at position {i}: {g!r} where {w!r} was expected"
    if len(got) != len(want):
        return f"{name} has {len(got)} elements where {len(want)} were expected: {got} against {want}"
    return None


def _dict_difference(got, want: dict, name: str) -> str | None:
    if not isinstance(got, dict):
        return f"{name} is {_kind(got)} where a dict (or Counter) was expected"
    for key, count in want.items():
        if got.get(key, 0) != count:
            return f"{name}: {key!r} has {got.get(key, 0)} where {count} was expected"
    extra = [key for key in got if key not in want and got[key]]
    return f"{name}: {extra[0]!r} is counted but never occurs" if extra else None


def describe(function: Callable, args: tuple) -> str:
    """The inputs, as the learner's function names them: numbers shown, arrays by shape."""
    if isinstance(function, type):  # a Function subclass: name its forward's arguments
        names = list(inspect.signature(function.forward).parameters)[1:]
    else:
        names = list(inspect.signature(function).parameters)
    return ", ".join(f"{n}={_brief(a)}" for n, a in zip(names, args))


def _brief(value) -> str:
    if isinstance(value, Tensor):
        if value.name:
            return value.name
        value = value.data
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            return repr(np.round(value, 4).tolist())
        return f"an array of shape {_shape(value.shape)}"
    if callable(value):
        return getattr(value, "__name__", "a function")
    if isinstance(value, list) and len(value) > 12:
        return f"a list of {len(value)}"
    return repr(value)


def _plain(value):
    """An answer's value as the comparison reads it: Tensors as arrays, Counters as dicts."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, dict):
        return dict(value)
    return value


def _copy(args: tuple) -> tuple:
    return tuple(a.copy() if isinstance(a, (np.ndarray, list)) else a for a in args)


def _kind(value) -> str:
    return f"a {type(value).__name__}" if not isinstance(value, tuple) else f"a tuple of {len(value)}"


def _shape(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


def _numbers(got, want) -> tuple[str, str]:
    """Two numbers written with 6 significant digits, or as many more as it takes to tell them apart."""
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype == bool or want.dtype == bool:
        return str(bool(got)), str(bool(want))
    for digits in range(6, 18):
        pair = f"{float(got):.{digits}g}", f"{float(want):.{digits}g}"
        if pair[0] != pair[1]:
            break
    return pair
