"""Best-reference lookups through the real ``crds`` client, online or from an offline cache.

This is the romanxr side of what stpipe's ``crds_client`` does for romancal: the exposure's
metadata is flattened into CRDS selection parameters exactly as roman_datamodels'
``get_crds_parameters`` does (``roman.meta.instrument.detector``, ...) and handed to
``crds.getreferences`` for observatory ``roman``.

CRDS keeps its configuration in environment variables and in module-level caches. Every lookup
here therefore runs under one process-wide lock inside :func:`crds_environment`, which sets
``CRDS_PATH`` / ``CRDS_SERVER_URL`` (and, offline, ``CRDS_MODE=local``),
resets crds' function caches, and restores everything it changed on exit, so a lookup never
leaks configuration into the caller or into a romancal run in the same process.

Offline means: no server URL, a URL containing ``serverless``, or a host in the reserved
``.invalid`` domain. Then crds is handed the cache's own ``config/roman/server_config`` (it
never tries the network), and a reference missing from the cache is reported as missing
instead of as the misleading network error crds would raise while trying to download it.

Results are cached per (cache, server, context, reftype, values of the rmap's selection
parameters), and the context's parsed rules per (cache, server): resetting crds' caches for
each lookup would otherwise make crds parse the ``.pmap``, ``.imap`` and every ``.rmap`` again
for every reference type of a run. :func:`clear_crds_cache` empties both.
"""

from __future__ import annotations

import ast
import datetime
import enum
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from romanxr.errors import CrdsConfigurationError, ReferenceNotFoundError

__all__ = [
    "OBSERVATORY",
    "clear_crds_cache",
    "crds_best_reference",
    "crds_environment",
    "crds_parameters",
    "is_offline_server",
]

OBSERVATORY = "roman"
INSTRUMENT = "wfi"

#: crds settings that override ``CRDS_PATH`` for one part of the cache; cleared when a lookup
#: names its own cache folder so that the folder is used whole.
_PATH_OVERRIDES = tuple(
    f"CRDS_{part}{suffix}"
    for part in ("PATH", "MAPPATH", "REFPATH", "CFGPATH", "PICKLEPATH")
    for suffix in ("_SINGLE", "")
    if f"CRDS_{part}{suffix}" != "CRDS_PATH"
)

_LOCK = threading.RLock()

# (crds_path, server, requested context, reftype) -> (final context, parkeys)
_PARKEYS: dict[tuple, tuple[str, tuple[str, ...]]] = {}
# (crds_path, server, final context, reftype, parkey values) -> path or None
_RESULTS: dict[tuple, str | None] = {}
# (crds_path, server) -> crds' loaded mappings ({cache key: Mapping} of rmap._load_mapping)
_MAPPINGS: dict[tuple, dict] = {}


def clear_crds_cache() -> None:
    """Forget every cached lookup result and parsed context (e.g. after changing files in a
    CRDS cache)."""
    with _LOCK:
        _PARKEYS.clear()
        _RESULTS.clear()
        _MAPPINGS.clear()


@contextmanager
def _reuse_mappings(key: tuple) -> Iterator[None]:
    """Inside :func:`crds_environment`: hand crds the mappings parsed by earlier lookups under
    the same cache and server, and keep what this lookup parsed for the next one.

    crds keeps loaded mappings in the function cache of ``rmap._load_mapping``, keyed by the
    mapping's name; :func:`crds_environment` empties that cache (it would otherwise carry one
    cache's rules into a lookup in another), so the mappings are kept here per
    ``(CRDS_PATH, server)`` instead.
    """
    from crds.core import rmap

    loaded = _MAPPINGS.setdefault(key, {})
    rmap._load_mapping.cache.update(loaded)
    try:
        yield
    finally:
        loaded.update(rmap._load_mapping.cache)


def is_offline_server(server_url: str | None) -> bool:
    """True when ``server_url`` names no reachable CRDS server.

    That is: unset/empty, ``none``, a crds "serverless" URL, or a host in the reserved
    ``.invalid`` top-level domain (RFC 2606), which never resolves.
    """
    if not server_url or server_url.strip().lower() in ("none", "offline"):
        return True
    if "serverless" in server_url:
        return True
    host = (urlparse(server_url).hostname or "").lower()
    return host == "invalid" or host.endswith(".invalid")


# ------------------------------------------------------------------------------------------
# selection parameters


def _scalar(value: Any) -> Any:
    """Convert one metadata leaf the way roman_datamodels does; ``None`` drops it."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if type(value).__name__ == "Time" and hasattr(value, "isot"):
        return str(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, int | float | complex):
        return value
    if isinstance(value, np.floating):
        return float(value)
    return None


def crds_parameters(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten a Roman ``meta`` tree into CRDS selection parameters.

    Mirrors ``roman_datamodels.DataModel.get_crds_parameters``: every scalar leaf (str, int,
    float, complex, bool; times as ISO strings) of ``meta`` becomes
    ``roman.meta.<dotted.path>``, list items by index (``...read_pattern.0.0``); arrays and
    other objects are left out.

    Parameters
    ----------
    meta : mapping
        The exposure's ``meta`` tree (``ds.attrs["meta"]``), nested dicts.

    Returns
    -------
    dict
        e.g. ``{"roman.meta.instrument.detector": "WFI01", ...}``.
    """
    out: dict[str, Any] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{name}.{key}")
        elif isinstance(node, Sequence) and not isinstance(node, str | bytes):
            # lists, tuples and asdf's lazy list nodes
            for index, value in enumerate(node):
                walk(value, f"{name}.{index}")
        else:
            scalar = _scalar(node)
            if scalar is not None:
                out[name] = scalar

    walk(meta, "roman.meta")
    return out


# ------------------------------------------------------------------------------------------
# crds configuration


def _reset_crds_module_state() -> None:
    """Drop crds' cached configuration so the current environment is read afresh."""
    from crds.client import api
    from crds.core import config, utils

    utils.clear_function_caches()
    config.CRDS_REF_SUBDIR_MODE = "None"
    url = os.environ.get("CRDS_SERVER_URL") or f"https://{OBSERVATORY}-serverless-mode.stsci.edu"
    api.set_crds_server(url)
    _prime_offline_config(url)


def _prime_offline_config(url: str) -> None:
    """Offline, hand crds the cache's own server configuration so it never calls a server.

    crds asks the server first and falls back to ``config/roman/server_config`` only after
    the network fails. Putting the cached configuration into crds' memo of
    ``api.get_server_info`` skips that attempt. (``CRDS_CONFIG_URI`` would do the same, but
    crds lower-cases its value, which breaks cache paths with capitals.)
    """
    if not is_offline_server(url):
        return
    from crds.client import api, proxy
    from crds.core import config

    path = Path(config.get_crds_cfgpath(OBSERVATORY)) / "server_config"
    try:
        info = ast.literal_eval(path.read_text())
    except (OSError, ValueError, SyntaxError):
        return  # not a cache: the lookup reports it
    if not isinstance(info, dict):
        return
    info.update(status="cache", connected=False, server=url)
    info.setdefault("download_metadata", proxy.crds_encode({}))
    api.get_server_info.cache[api.get_server_info.cache_key()] = info


def _offline_env() -> dict[str, str | None]:
    # "none" is crds' own spelling of "unset" (removing the variable breaks crds)
    return {"CRDS_CONFIG_URI": "none", "CRDS_MODE": "local"}


@contextmanager
def crds_environment(env: Mapping[str, str | None], *, lock: bool = True) -> Iterator[None]:
    """Run a block with crds configured from ``env``, restoring crds' state afterwards.

    Parameters
    ----------
    env : mapping of str -> str or None
        ``CRDS_*`` variables to set (``None`` removes one) for the block. crds' module
        caches and server setting are reset on entry and on exit, so the block sees exactly
        this configuration and code after it sees the previous one.
    lock : bool
        Hold romanxr's crds lock for the whole block (default). Pass ``False`` for long
        blocks (e.g. a romancal run) in which other threads may also look references up;
        the switch itself is still done under the lock.
    """
    from crds.client import api
    from crds.core import config

    with _LOCK:
        # crds writes its settings back into os.environ when it reads them, so restore the
        # whole CRDS_* namespace, not only the variables set here
        saved = {k: v for k, v in os.environ.items() if k.startswith("CRDS_")}
        saved_url = getattr(api, "URL", None)
        saved_proxy = getattr(api, "S", None)
        saved_subdir = config.CRDS_REF_SUBDIR_MODE
        _apply_env(env)
        _reset_crds_module_state()
        if lock:
            _LOCK.acquire()
    try:
        yield
    finally:
        with _LOCK:
            if lock:
                _LOCK.release()
            for key in [k for k in os.environ if k.startswith("CRDS_") and k not in saved]:
                del os.environ[key]
            _apply_env(saved)
            from crds.core import utils

            utils.clear_function_caches()
            config.CRDS_REF_SUBDIR_MODE = saved_subdir
            if saved_url is not None:
                api.URL = saved_url
                api.S = saved_proxy
                _prime_offline_config(saved_url[: -len(api.URL_SUFFIX)])


def _apply_env(env: Mapping[str, str | None]) -> None:
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = str(value)


# ------------------------------------------------------------------------------------------
# lookups


def _fix_hint(reftype: str, option_hint: str | None = None) -> str:
    option = f"override_{reftype}"
    cli = f" (on the command line: {option_hint})" if option_hint else ""
    return (
        f"pass {option}=<path to the {reftype} file>{cli}, or point CRDS_PATH at a CRDS cache "
        f"that holds it"
    )


def _where(reftype: str, context: str | None, crds_path: str | None, server: str | None) -> str:
    return (
        f"reftype={reftype!r}, context={context or 'default (operational)'}, "
        f"CRDS_PATH={crds_path or '(unset)'}, CRDS_SERVER_URL={server or '(unset)'}"
    )


def crds_best_reference(
    reftype: str,
    meta: Mapping[str, Any],
    *,
    context: str | None = None,
    crds_path: str | os.PathLike | None = None,
    server_url: str | None = None,
    option_hint: str | None = None,
) -> tuple[str | None, str]:
    """Ask CRDS for the best ``reftype`` reference for an exposure.

    Parameters
    ----------
    reftype : str
        CRDS reference type, e.g. ``"dark"`` (case-insensitive).
    meta : mapping
        The exposure's ``meta`` tree; see :func:`crds_parameters`.
    context : str, optional
        Pinned context (``roman_0123.pmap``, or ``roman_wfi_0123.imap``); default
        ``$CRDS_CONTEXT``, else the cache's/server's operational context.
    crds_path : path, optional
        CRDS cache folder; default ``$CRDS_PATH``.
    server_url : str, optional
        CRDS server; default ``$CRDS_SERVER_URL``. Offline (see :func:`is_offline_server`)
        the lookup uses only the cache.
    option_hint : str, optional
        The option that replaces this reference where the caller's users set it (e.g.
        ``--steps.flatfield.override_flat``); error messages name it.

    Returns
    -------
    path : str or None
        Local path of the reference file; ``None`` when CRDS says "N/A" (not applicable).
    context : str
        The context that made the selection (a ``.pmap``, or the ``.imap`` if one was
        pinned).

    Raises
    ------
    CrdsConfigurationError
        No cache and no server, a cache without configuration or without the context.
    ReferenceNotFoundError
        The rules hold no match, a selection parameter is missing from ``meta``, or the
        selected file is not in an offline cache. Messages name the reference type, the
        context, ``CRDS_PATH`` and the ``override_<reftype>`` option.
    """
    reftype = reftype.lower()
    path_s = os.fspath(crds_path) if crds_path is not None else os.environ.get("CRDS_PATH")
    server = server_url if server_url is not None else os.environ.get("CRDS_SERVER_URL")
    requested = context or os.environ.get("CRDS_CONTEXT") or None
    offline = is_offline_server(server)
    fix = _fix_hint(reftype, option_hint)
    if not path_s and offline:
        raise CrdsConfigurationError(
            f"cannot look up the {reftype} reference: CRDS is not configured "
            f"({_where(reftype, requested, path_s, server)}); set CRDS_PATH to a CRDS cache "
            f"(e.g. one made by romanxr.testing.build_local_crds_cache or `crds sync`) or "
            f"CRDS_SERVER_URL to a CRDS server, or {fix}"
        )
    server_key = "offline" if offline else server
    pk_key = (path_s, server_key, requested, reftype)
    with _LOCK:
        known = _PARKEYS.get(pk_key)
        if known is not None:
            final, parkeys = known
            direct = {k.lower(): _meta_value(meta, k) for k in parkeys}
            values = _parkey_values(direct, parkeys, reftype, final, path_s, server, fix)
            res_key = (path_s, server_key, final, reftype, values)
            if res_key in _RESULTS:
                return _RESULTS[res_key], final
        params = crds_parameters(meta)
        env: dict[str, str | None] = {}
        if crds_path is not None:
            env.update(dict.fromkeys(_PATH_OVERRIDES))
        if path_s:
            env["CRDS_PATH"] = path_s
        if offline:
            env.update(_offline_env())
        if server:
            env["CRDS_SERVER_URL"] = server
        if server_url is not None and not offline:
            env["CRDS_CONFIG_URI"] = "none"  # an explicit server: ask it, not a config file
        try:
            with crds_environment(env), _reuse_mappings((path_s, server_key)):
                final, parkeys, found = _lookup(
                    reftype, params, requested, path_s, server, offline, fix
                )
        except SystemExit as exc:  # crds' fatal handler exits the process: not ours to end
            raise _fatal_exit(reftype, requested, path_s, server, fix, exc) from None
        values = _parkey_values(params, parkeys, reftype, final, path_s, server, fix)
        _PARKEYS[pk_key] = (final, parkeys)
        _RESULTS[(path_s, server_key, final, reftype, values)] = found
        return found, final


def _fatal_exit(
    reftype: str,
    context: str | None,
    crds_path: str | None,
    server: str | None,
    fix: str,
    exc: SystemExit,
) -> CrdsConfigurationError:
    """The typed error for a ``SystemExit`` from the crds client (its fatal-error handler)."""
    return CrdsConfigurationError(
        f"cannot look up the {reftype} reference: the CRDS client gave up (it exits with "
        f"status {exc.code}) because the server could not be reached and the cache at "
        f"CRDS_PATH={crds_path or '(unset)'} holds no configuration for {OBSERVATORY} "
        f"({_where(reftype, context, crds_path, server)}). Fix: sync the cache while online "
        f"(`crds sync --contexts roman_<n>.pmap --fetch-references`, then run offline with "
        f"CRDS_SERVER_URL unset or serverless), point CRDS_SERVER_URL at a reachable CRDS "
        f"server, or {fix}"
    )


def _meta_value(meta: Mapping[str, Any], parkey: str) -> Any:
    """One selection parameter straight from ``meta`` (as :func:`crds_parameters` has it)."""
    node: Any = meta
    for part in parkey.lower().removeprefix("roman.meta.").split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
    value = _scalar(node)
    return _MISSING if value is None else value


_MISSING = object()


def _parkey_values(
    params: Mapping[str, Any],
    parkeys: tuple[str, ...],
    reftype: str,
    context: str,
    crds_path: str | None,
    server: str | None,
    fix: str,
) -> tuple:
    lowered = {k.lower(): v for k, v in params.items()}
    values = []
    for key in parkeys:
        if lowered.get(key.lower(), _MISSING) is _MISSING:
            field = key.lower().removeprefix("roman.")
            raise ReferenceNotFoundError(
                f"cannot select the {reftype} reference: the exposure has no {field} "
                f"(CRDS selects {reftype} by {', '.join(k.lower() for k in parkeys)}; "
                f"{_where(reftype, context, crds_path, server)}); fill in {field} or "
                f"{fix}"
            )
        values.append(lowered[key.lower()])
    return tuple(values)


def _lookup(
    reftype: str,
    params: dict[str, Any],
    requested: str | None,
    crds_path: str | None,
    server: str | None,
    offline: bool,
    fix: str,
) -> tuple[str, tuple[str, ...], str | None]:
    """The crds calls proper; runs inside :func:`crds_environment` and the lock."""
    import crds
    from crds.core import config, heavy_client

    where = _where(reftype, requested, crds_path, server)
    if offline:
        server_config = Path(crds_path or "") / "config" / OBSERVATORY / "server_config"
        if not server_config.is_file():
            raise CrdsConfigurationError(
                f"cannot look up the {reftype} reference offline: {server_config} does not "
                f"exist, so {crds_path} is not a usable CRDS cache ({where}); build one with "
                f"romanxr.testing.build_local_crds_cache (or `crds sync` while online), set "
                f"CRDS_SERVER_URL to a reachable CRDS server, or {fix}"
            )
    if requested is not None and not config.is_mapping_spec(requested):
        raise CrdsConfigurationError(
            f"{requested!r} is not a CRDS context name ({where}); pass a context such as "
            f"roman_0123.pmap (argument context= or CRDS_CONTEXT)"
        )
    try:
        _mode, final = heavy_client.get_processing_mode(OBSERVATORY, requested)
    except Exception as exc:  # crds raises many kinds; none is useful as is
        raise CrdsConfigurationError(
            f"CRDS configuration for {OBSERVATORY} could not be read ({where}): {exc}; "
            f"check CRDS_PATH/CRDS_SERVER_URL, or {fix}"
        ) from None
    where = _where(reftype, final, crds_path, server)
    try:
        ctx = heavy_client.get_symbolic_mapping(final, cached=True)
    except Exception as exc:  # crds raises many kinds; none is useful as is
        raise CrdsConfigurationError(
            f"CRDS context {final} is not in the cache or cannot be read ({where}): {exc}; "
            f"pin a context that the cache holds (context=/CRDS_CONTEXT), or "
            f"{fix}"
        ) from None
    rmap_ = _reference_mapping(ctx, reftype, where, fix)
    parkeys = tuple(str(k) for k in rmap_.get_required_parkeys())
    _parkey_values(params, parkeys, reftype, final, crds_path, server, fix)
    try:
        best = crds.getrecommendations(
            params, reftypes=[reftype], context=final, observatory=OBSERVATORY
        )
    except Exception as exc:  # crds raises many kinds; none is useful as is
        raise ReferenceNotFoundError(
            f"CRDS found no {reftype} reference for this exposure ({where}): {exc}; {fix}"
        ) from None
    name = str(best.get(reftype, "NOT FOUND n/a"))
    if name.upper().startswith("NOT FOUND") and "N/A" not in name.upper():
        selection = ", ".join(
            f"{k.lower().removeprefix('roman.')}={params.get(k.lower(), params.get(k))!r}"
            for k in parkeys
        )
        raise ReferenceNotFoundError(
            f"CRDS rules {rmap_.basename} hold no {reftype} reference for {selection} "
            f"({where}; crds says: {name}); {fix}"
        )
    if "N/A" in name.upper():
        return final, parkeys, None
    if offline:
        # crds' own locate_file asks the server where a file that is not cached belongs
        refpath = Path(config.get_crds_refpath(OBSERVATORY))
        candidates = [refpath / INSTRUMENT / name, refpath / name]
        if not any(c.is_file() for c in candidates):
            raise ReferenceNotFoundError(
                f"CRDS selected {name} as the {reftype} reference, but it is not in the "
                f"offline CRDS cache (looked for {candidates[0]}; {where}); copy the file "
                f"there, or {fix}"
            )
    try:
        paths = crds.getreferences(
            params, reftypes=[reftype], context=final, observatory=OBSERVATORY
        )
    except Exception as exc:  # crds raises many kinds; none is useful as is
        raise ReferenceNotFoundError(
            f"CRDS selected {name} as the {reftype} reference but could not provide it "
            f"({where}): {exc}; {fix}"
        ) from None
    return final, parkeys, str(paths[reftype])


def _reference_mapping(ctx: Any, reftype: str, where: str, fix: str) -> Any:
    """The ``.rmap`` for ``reftype`` under a pipeline or instrument context."""

    try:
        imap = ctx.get_imap(INSTRUMENT) if hasattr(ctx, "get_imap") else ctx
        return imap.get_rmap(reftype)
    except Exception as exc:  # crds raises many kinds; none is useful as is
        raise ReferenceNotFoundError(
            f"CRDS context {ctx.basename} has no rules for reference type {reftype!r} "
            f"({where}): {exc}; {fix}"
        ) from None
