"""Apply `{pattern: transform}` plans to the submodules of an Equinox model in one pass."""

import dataclasses
import difflib
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import equinox as eqx


Transform = Callable[[eqx.Module], eqx.Module]
Plan = Mapping[str, Transform]
OnConflict = Literal["error", "compose"]

_MISSING = object()
_dynamic_fields_cache: dict[type, tuple[str, ...]] = {}


def _dynamic_fields(cls: type) -> tuple[str, ...]:
    # Static fields live in the treedef, not in the tree, so they are never traversed
    # (the same view `jax.tree_util` and `eqx.tree_at` have of a Module).
    try:
        return _dynamic_fields_cache[cls]
    except KeyError:
        names = tuple(
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if not f.metadata.get("static", False)
        )
        _dynamic_fields_cache[cls] = names
        return names


def _children(node: Any) -> Iterator[tuple[str, tuple[str, Any], Any]]:
    """Children of a Module, list, tuple or dict as `(name, step, child)`.

    `step` is `("attr", name)` or `("item", index_or_key)`, used to build getters. Other
    pytree nodes are not traversed: modules inside them are not visited.
    """
    if isinstance(node, eqx.Module):
        d = node.__dict__
        for name in _dynamic_fields(type(node)):
            child = d.get(name, _MISSING)
            if child is not _MISSING:
                yield name, ("attr", name), child
    elif isinstance(node, tuple) and hasattr(node, "_fields"):  # namedtuple
        for name, child in zip(node._fields, node):
            yield name, ("attr", name), child
    elif isinstance(node, (list, tuple)):
        for i, child in enumerate(node):
            yield str(i), ("item", i), child
    elif isinstance(node, dict):
        for k, child in node.items():
            yield str(k), ("item", k), child


class _Getter:
    """`getter(root)` returns the node at a fixed path; usable as `eqx.tree_at`'s `where`."""

    __slots__ = ("steps",)

    def __init__(self, steps: tuple[tuple[str, Any], ...]):
        self.steps = steps

    def __call__(self, root: Any) -> Any:
        node = root
        for kind, k in self.steps:
            node = getattr(node, k) if kind == "attr" else node[k]
        return node

    def __repr__(self) -> str:
        parts = "".join(f".{k}" if kind == "attr" else f"[{k!r}]" for kind, k in self.steps)
        return f"<getter root{parts}>"


def iter_module(module: eqx.Module) -> Iterator[tuple[str, _Getter, eqx.Module]]:
    """Yield `(path, getter, submodule)` for every Module node, pre-order.

    Paths join field names and list/tuple indices with dots (`layers.3.attention.query`);
    the root itself is yielded first with path `""`. `getter(module)` returns the submodule,
    so it can be passed to `eqx.tree_at`. Static fields are not traversed; modules inside
    lists, tuples, namedtuples and dicts are.

    Example:
        >>> paths = [p for p, _, _ in iter_module(model)]  # doctest: +SKIP
    """
    stack: list[tuple[str, tuple, Any]] = [("", (), module)]
    while stack:
        path, steps, node = stack.pop()
        if isinstance(node, eqx.Module):
            yield path, _Getter(steps), node
        kids = [
            (f"{path}.{name}" if path else name, (*steps, step), child)
            for name, step, child in _children(node)
        ]
        stack.extend(reversed(kids))


class _Matcher:
    """Compiled plan: one combined regex rejects most paths; per-pattern regexes say which."""

    def __init__(self, plan: Plan):
        if not isinstance(plan, Mapping):
            raise TypeError(f"`plan` must map fnmatch patterns to transforms, got {type(plan)}.")
        self.patterns = list(plan)
        self.transforms = [plan[p] for p in self.patterns]
        for p, t in zip(self.patterns, self.transforms):
            if not isinstance(p, str) or not callable(t):
                raise TypeError(f"`plan` must map str patterns to callables, got {p!r}: {t!r}.")
        translated = [fnmatch.translate(p) for p in self.patterns]
        self.each = [re.compile(t).match for t in translated]
        self.any = (
            re.compile("|".join(f"(?:{t})" for t in translated)).match if translated else None
        )

    def match(self, path: str) -> list[int]:
        if self.any is None or self.any(path) is None:
            return []
        return [i for i, m in enumerate(self.each) if m(path) is not None]


def _resolve(matcher: _Matcher, path: str, hits: list[int], on_conflict: OnConflict) -> list[int]:
    if len(hits) > 1 and on_conflict == "error":
        names = " and ".join(repr(matcher.patterns[i]) for i in hits)
        raise ValueError(
            f"Path {path!r} is matched by {len(hits)} patterns: {names}. Make the patterns "
            "disjoint, or pass `on_conflict='compose'` to apply all of them in plan order."
        )
    return hits


def _apply(matcher: _Matcher, hits: list[int], path: str, node: eqx.Module) -> eqx.Module:
    for i in hits:
        out = matcher.transforms[i](node)
        if not isinstance(out, eqx.Module):
            raise TypeError(
                f"Transform for pattern {matcher.patterns[i]!r} at path {path!r} returned "
                f"{type(out).__name__}; a transform must return an `eqx.Module`."
            )
        node = out
    return node


def _check_unmatched(
    matcher: _Matcher, counts: list[int], module: eqx.Module, strict: bool
) -> None:
    missing = [p for p, c in zip(matcher.patterns, counts) if c == 0]
    if not missing:
        return
    paths = [p for p, _, _ in iter_module(module) if p]
    lines = []
    for p in missing:
        close = difflib.get_close_matches(p, paths, n=3, cutoff=0.0)
        lines.append(f"  {p!r} (closest paths: {', '.join(map(repr, close)) or 'none'})")
    msg = "Patterns in `plan` matched no module:\n" + "\n".join(lines)
    if strict:
        raise ValueError(msg + "\nPass `strict=False` to warn instead.")
    warnings.warn(msg, UserWarning, stacklevel=3)


def _replace_fields(node: eqx.Module, changes: dict[str, Any]) -> eqx.Module:
    # What a Module's generated pytree `unflatten` does: a new instance with the same
    # `__dict__` (static fields, wrapper fields) and some dynamic fields swapped. `__init__`
    # is not rerun, exactly as in `eqx.tree_at`.
    new = object.__new__(type(node))
    new.__dict__.update(node.__dict__)
    new.__dict__.update(changes)
    return new


def apply_transforms(
    module: eqx.Module,
    plan: Plan,
    *,
    strict: bool = True,
    on_conflict: OnConflict = "error",
) -> eqx.Module:
    """Apply every `{fnmatch pattern: transform}` of `plan` in one pass over the tree.

    Each Module node whose path (see [`iter_module`][]) matches a pattern is replaced by
    `transform(node)`. The tree is rebuilt bottom-up in a single traversal, touching only
    the ancestors of matched nodes, so the cost is O(leaves) however many patterns match
    (one `eqx.tree_at` per match is O(matches x leaves)). Unchanged subtrees are shared
    with the input.

    Semantics:
        - Patterns use `fnmatch.fnmatchcase` over the whole dotted path; `*` also matches
          dots (`layers.*` matches `layers.3.attention.query`).
        - Nested matches are applied innermost first: a matched module's transform receives
          it with its matched descendants already transformed.
        - Two patterns matching one path raise `ValueError` naming both, unless
          `on_conflict="compose"`, which applies them in plan order.
        - A transform must return an `eqx.Module`, else `TypeError`.
        - A pattern that matches nothing raises `ValueError` naming it and the closest
          existing paths (`difflib`); `strict=False` warns instead.

    Args:
        module: the model; not modified.
        plan: `{pattern: transform}`; transforms map a Module to a Module.
        strict: raise (default) or warn on patterns that match nothing.
        on_conflict: `"error"` (default) or `"compose"`.

    Returns:
        The transformed model; `eqx.tree_equal` to [`apply_transforms_sequential`][]'s.
    """
    matcher = _Matcher(plan)
    counts = [0] * len(matcher.patterns)
    is_module = eqx.Module
    fields_of = _dynamic_fields

    def visit(node: Any, path: str) -> Any:
        if isinstance(node, is_module):
            d = node.__dict__
            changes = None
            prefix = f"{path}." if path else ""
            for name in fields_of(type(node)):
                child = d.get(name, _MISSING)
                if child is _MISSING:
                    continue
                new = visit(child, prefix + name)
                if new is not child:
                    if changes is None:
                        changes = {}
                    changes[name] = new
            if changes is not None:
                node = _replace_fields(node, changes)
            hits = matcher.match(path)
            if hits:
                _resolve(matcher, path, hits, on_conflict)
                for i in hits:
                    counts[i] += 1
                node = _apply(matcher, hits, path, node)
            return node
        if isinstance(node, (list, tuple)):
            prefix = f"{path}." if path else ""
            if hasattr(node, "_fields"):
                names = node._fields
            else:
                names = [str(i) for i in range(len(node))]
            items = [visit(c, prefix + n) for c, n in zip(node, names)]
            if all(a is b for a, b in zip(items, node)):
                return node
            if hasattr(node, "_fields"):
                return type(node)(*items)
            return type(node)(items)
        if isinstance(node, dict):
            prefix = f"{path}." if path else ""
            items = {k: visit(c, prefix + str(k)) for k, c in node.items()}
            if all(items[k] is node[k] for k in node):
                return node
            return type(node)(items)
        return node

    out = visit(module, "")
    _check_unmatched(matcher, counts, module, strict)
    return out


def _find_matches(
    module: eqx.Module, plan: Plan, strict: bool, on_conflict: OnConflict
) -> tuple[_Matcher, list[tuple[str, _Getter, list[int]]]]:
    matcher = _Matcher(plan)
    counts = [0] * len(matcher.patterns)
    matches = []
    for path, getter, _ in iter_module(module):
        hits = matcher.match(path)
        if hits:
            _resolve(matcher, path, hits, on_conflict)
            for i in hits:
                counts[i] += 1
            matches.append((path, getter, hits))
    _check_unmatched(matcher, counts, module, strict)
    return matcher, matches


def _depth(getter: _Getter) -> int:
    return len(getter.steps)


def apply_transforms_sequential(
    module: eqx.Module, plan: Plan, *, strict: bool = True, on_conflict: OnConflict = "error"
) -> eqx.Module:
    """Reference: one `eqx.tree_at` per match, deepest first (O(matches x leaves)).

    Same semantics and result as [`apply_transforms`][]; kept as the "before" it is tested
    and benchmarked against.
    """
    matcher, matches = _find_matches(module, plan, strict, on_conflict)
    for path, getter, hits in sorted(matches, key=lambda m: -_depth(m[1])):
        new = _apply(matcher, hits, path, getter(module))
        module = eqx.tree_at(getter, module, new)
    return module


def apply_transforms_tree_at(
    module: eqx.Module, plan: Plan, *, strict: bool = True, on_conflict: OnConflict = "error"
) -> eqx.Module:
    """Reference: one batched `eqx.tree_at` per nesting depth, deepest first.

    Without nested matches (e.g. [`bert_tp_plan`][]) this is a single `eqx.tree_at` call
    (the seeds' "after"). Same semantics and result as [`apply_transforms`][].
    """
    matcher, matches = _find_matches(module, plan, strict, on_conflict)
    by_depth: dict[int, list[tuple[str, _Getter, list[int]]]] = {}
    for m in matches:
        by_depth.setdefault(_depth(m[1]), []).append(m)
    for depth in sorted(by_depth, reverse=True):
        level = by_depth[depth]
        getters = [g for _, g, _ in level]
        if depth == 0:  # the root itself: nothing to `tree_at` into
            path, getter, hits = level[0]
            module = _apply(matcher, hits, path, module)
            continue
        new = [_apply(matcher, hits, path, g(module)) for path, g, hits in level]
        module = eqx.tree_at(lambda m, gs=getters: [g(m) for g in gs], module, new)
    return module
