# harness.py - the Python half of gatehouse-sandbox, compiled into the binary.
#
# The zygote executes this module once at start: the imports below load every standard module a
# script may use, so a child never needs the file system. For each run the child (already
# confined, see confine.c) calls child_main() with the run message: it builds the script's
# globals (one object per server, ToolError, a print() that writes to a bounded buffer, a
# __import__ that only hands out the modules loaded here), runs or analyses the script, and
# writes the last frame ("done" or "analysis") on the execution socket through _gatehouse.
#
# The import gate and the missing open() give the model clear errors; they are not the security
# boundary. A script can reach os through any module's globals; what stops it is the kernel
# (namespaces, rlimits, seccomp), and the escape suite checks exactly that.

import ast
import base64
import bisect
import builtins
import calendar
import cmath
import collections
import collections.abc
import copy
import csv
import dataclasses
import datetime
import decimal
import difflib
import enum
import fractions
import functools
import gc
import hashlib
import heapq
import hmac
import html
import io
import itertools
import json
import keyword
import math
import numbers
import operator
import pprint
import random
import re
import secrets
import statistics
import string
import struct
import sys
import textwrap
import time
import typing
import unicodedata
import urllib.parse
import uuid
import zlib
import _strptime  # loaded lazily by datetime.strptime; there is no file system in the child
import encodings.ascii, encodings.latin_1, encodings.utf_16, encodings.utf_32  # noqa: E401
import encodings.cp1252, encodings.idna, encodings.punycode, encodings.hex_codec  # noqa: E401
import encodings.base64_codec  # codecs are found by importing, so they are loaded here

import _gatehouse

# What a script may import: nothing that reaches files, processes or the network.
ALLOWED_MODULES = (
    "base64 bisect calendar cmath collections collections.abc copy csv dataclasses datetime "
    "decimal difflib enum fractions functools hashlib heapq hmac html io itertools json keyword "
    "math numbers operator pprint random re secrets statistics string struct textwrap time "
    "typing unicodedata urllib.parse uuid zlib"
).split()
_ALLOWED = frozenset(ALLOWED_MODULES)
# Imported from C by allowed modules, through the script's __import__ (datetime.strptime).
_INTERNAL = frozenset(("_strptime",))

# Builtins a script does not get: files, the terminal, the interactive helpers.
_REMOVED_BUILTINS = ("open", "input", "breakpoint", "help", "exit", "quit", "copyright",
                     "credits", "license")

_SCRIPT = "<script>"
_HINT_MODULES = "modules available: " + ", ".join(ALLOWED_MODULES) + \
    "; the sandbox has no files, processes or network"
_real_import = builtins.__import__


class ToolError(Exception):
    """A tool call failed: the message is the tool's (or the gateway's) error text."""


class OutputLimitExceeded(BaseException):
    """print() went past the output limit. A BaseException so that `except Exception` in the
    script does not swallow it; a script that catches it anyway still ends with "limit"."""


class _Output:
    """Captured print() output, cut at the limit (in UTF-8 bytes)."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.size = 0
        self.over = False

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not " + type(text).__name__)
        data = text.encode("utf-8", "replace")
        if self.over:
            raise OutputLimitExceeded("output limit of %d bytes reached" % self.limit)
        room = self.limit - self.size
        if len(data) > room:
            self.parts.append(data[:room].decode("utf-8", "ignore"))
            self.size = self.limit
            self.over = True
            raise OutputLimitExceeded("output limit of %d bytes reached" % self.limit)
        self.parts.append(text)
        self.size += len(data)
        return len(text)

    def flush(self):
        pass

    def text(self):
        return _clean_str("".join(self.parts))


def _clean_str(s):
    """A str that encodes to UTF-8 (lone surrogates become '?')."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


def _to_json(value, depth=0):
    """value as plain JSON types: tuples and sets become lists, NaN and infinities null, keys
    strings; anything else its repr(). Deep structures are cut at 100 levels."""
    if depth > 100:
        return "<too deep>"
    if value is None or isinstance(value, (bool, int)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63 - 1:
            return str(value)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, dict):
        return {_clean_str(k if isinstance(k, str) else str(k)): _to_json(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_to_json(v, depth + 1) for v in value]
        try:
            items.sort()
        except TypeError:
            pass
        return items
    if isinstance(value, (bytes, bytearray)):
        return _clean_str(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, fractions.Fraction):
        return float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _to_json(dataclasses.asdict(value), depth + 1)
    return _clean_str(repr(value))


# Bound now, so that a script replacing json.dumps for its own use does not break the frames.
_json_dumps = json.dumps
_json_loads = json.loads


def _dumps(obj):
    return _json_dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# ---- tool calls ------------------------------------------------------------------------------

_seq = 0
_call_cap = 1 << 24  # set from the run's limits by child_main


def _call_tool(server, tool, kwargs):
    global _seq
    if _gatehouse.stream_broken():
        raise MemoryError("an earlier tool answer was lost to the memory limit; no more calls")
    # The stubs give optional parameters "= None", meaning "leave it out": a keyword passed as
    # None is not sent, since a server's schema rarely accepts null for an optional field.
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        args = _json_loads(_dumps(_to_json(kwargs)))
    except (TypeError, ValueError) as e:
        raise TypeError("arguments of %s.%s() cannot be sent as JSON: %s" % (server, tool, e))
    _seq += 1
    seq = _seq
    text = _dumps({"type": "call", "seq": seq, "server": server, "tool": tool, "args": args})
    size = len(text.encode("utf-8"))
    if size > _call_cap:
        raise ValueError("arguments of %s.%s() are too large to send (%d bytes of JSON, at most %d)"
                         % (server, tool, size, _call_cap))
    _gatehouse.send(text)
    reply = _json_loads(_gatehouse.recv())
    if not isinstance(reply, dict) or reply.get("type") != "return" or reply.get("seq") != seq:
        raise _gatehouse.ProtocolError("unexpected answer to tool call %d" % seq)
    if reply.get("ok"):
        return reply.get("value")
    raise ToolError(str(reply.get("error") or "the tool call failed"))


def _make_method(server, tool):
    def method(*args, **kwargs):
        if args:
            raise TypeError("%s.%s() takes keyword arguments only (%d positional given)"
                            % (server, tool, len(args)))
        return _call_tool(server, tool, kwargs)
    method.__name__ = tool
    method.__qualname__ = server + "." + tool
    return method


class _Server:
    """One MCP server as the script sees it: one method per tool."""

    def __init__(self, name, tools):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_tools", tuple(tools))
        for tool in tools:
            object.__setattr__(self, tool, _make_method(name, tool))

    def __getattr__(self, attr):
        raise AttributeError("server %r has no tool %r" % (self._name, attr), name=attr, obj=self)

    def __setattr__(self, attr, value):
        raise AttributeError("server %r is read-only" % self._name)

    def __dir__(self):
        return list(self._tools)

    def __repr__(self):
        return "<server %s: %s>" % (self._name, ", ".join(self._tools))


# ---- the script's world ----------------------------------------------------------------------

def _gated_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level != 0:
        raise ImportError("relative imports are not available in the sandbox")
    if name not in _ALLOWED and name not in _INTERNAL:
        raise ImportError("module %r is not available in the sandbox" % name, name=name)
    return _real_import(name, globals, locals, fromlist, level)


def _script_globals(servers, out):
    script_builtins = dict(builtins.__dict__)
    for name in _REMOVED_BUILTINS:
        script_builtins.pop(name, None)
    script_builtins["__import__"] = _gated_import

    def script_print(*args, sep=" ", end="\n", file=None, flush=False):
        if sep is None:
            sep = " "
        if end is None:
            end = "\n"
        if not isinstance(sep, str) or not isinstance(end, str):
            raise TypeError("sep and end must be None or strings")
        text = sep.join(str(a) for a in args) + end
        if file is None or file is out or file is sys.__stdout__ or file is sys.__stderr__:
            out.write(text)
        else:
            file.write(text)  # print(..., file=io.StringIO()) builds a string, as usual

    script_builtins["print"] = script_print
    g = {"__name__": "__main__", "__builtins__": script_builtins, "ToolError": ToolError,
         "result": None}
    for name, tools in servers.items():
        g[name] = _Server(name, tools)
    return g


def _lock_imports():
    """Nothing new can be imported by anyone: every module that exists is loaded already."""
    sys.meta_path[:] = []
    sys.path_hooks[:] = []
    sys.path[:] = []
    sys.path_importer_cache.clear()


# ---- errors ----------------------------------------------------------------------------------

def _script_line(tb):
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _SCRIPT:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _did_you_mean(name, names):
    close = difflib.get_close_matches(name, list(names), n=1) if isinstance(name, str) else []
    return "did you mean %s? " % close[0] if close else ""


def _hint(exc, servers):
    if isinstance(exc, ImportError):
        return _HINT_MODULES
    if isinstance(exc, NameError):
        name = getattr(exc, "name", None)
        if name in _REMOVED_BUILTINS:
            return "the sandbox has no files or terminal; return data through result or print()"
        if servers:
            return _did_you_mean(name, servers) + "servers available: " + \
                ", ".join(sorted(servers))
        return "no servers are available to this script"
    if isinstance(exc, AttributeError) and _message(exc).startswith("server "):
        for name, tools in servers.items():
            if _message(exc).startswith("server %r" % name):
                return _did_you_mean(getattr(exc, "name", None), tools) + \
                    "tools of %s: %s" % (name, ", ".join(tools))
    if isinstance(exc, TypeError) and "keyword arguments only" in _message(exc):
        return "call tools with keyword arguments: server.tool(name=value, ...)"
    if isinstance(exc, ToolError):
        return "the tool reported an error; catch ToolError to handle it in the script"
    if isinstance(exc, PermissionError):
        return "the sandbox has no files, processes or network"
    return None


def _message(exc):
    """str(exc), even for an exception whose __str__ raises or returns something else."""
    try:
        text = str(exc)
        return _clean_str(text) if isinstance(text, str) else "<unprintable>"
    except BaseException:
        return "<unprintable %s>" % type(exc).__name__


def _error(exc, line, hint):
    err = {"type": type(exc).__name__, "message": _message(exc), "line": line}
    if hint:
        err["hint"] = hint
    return err


def _classify(exc, servers, limits):
    """(status, error) for an exception that ended the script."""
    line = _script_line(exc.__traceback__)
    if isinstance(exc, OutputLimitExceeded):
        return "limit", _error(exc, line, "print less: the output limit is %d bytes"
                               % limits["output_bytes"])
    if isinstance(exc, MemoryError):
        return "limit", _error(exc, line, "the memory limit is %d MiB" % limits["memory_mb"])
    if isinstance(exc, RecursionError):
        return "limit", _error(exc, line, "recursion too deep; use a loop")
    if isinstance(exc, ToolError):
        return "tool", _error(exc, line, _hint(exc, servers))
    return "runtime", _error(exc, line, _hint(exc, servers))


# ---- modes -----------------------------------------------------------------------------------

def _execute(msg, servers, limits):
    out = _Output(limits["output_bytes"])
    try:
        code = compile(msg.get("code", ""), _SCRIPT, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", 0) or 0
        err = {"type": type(e).__name__, "message": _clean_str(getattr(e, "msg", None) or str(e)),
               "line": line}
        return {"type": "done", "status": "syntax", "output": "", "output_truncated": False,
                "result": None, "error": err}

    g = _script_globals(servers, out)
    sys.stdout = sys.stderr = out
    status, error, out_of_memory = "ok", None, False
    try:
        exec(code, g)
    except SystemExit as e:
        if e.code not in (None, 0):
            status, error = "runtime", _error(e, _script_line(e.__traceback__), None)
    except BaseException as e:  # every failure of the script is reported, none escapes
        out_of_memory = isinstance(e, MemoryError)
        if out_of_memory:
            g.clear()  # free what the script built before building the answer
            gc.collect()
        status, error = _classify(e, servers, limits)
        e.__traceback__ = None
    if out.over and status != "limit":
        status = "limit"
        error = {"type": "OutputLimitExceeded",
                 "message": "output limit of %d bytes reached" % out.limit, "line": 0,
                 "hint": "print less: the output limit is %d bytes" % out.limit}

    result = None
    if not out_of_memory:
        try:
            result = _to_json(g.get("result"))
        except BaseException:  # a __repr__ that raises, or a result too deep to walk
            result = None
    frame = {"type": "done", "status": status, "output": out.text(),
             "output_truncated": out.over, "result": result}
    if error is not None:
        frame["error"] = error
    return frame


class _Analysis(ast.NodeVisitor):
    """Finds server.tool(...) calls; any other use of a server name, or of the ways to reach
    a name dynamically, makes the script dynamic (its calls cannot all be known)."""

    _DYNAMIC_NAMES = frozenset(("getattr", "setattr", "delattr", "globals", "locals", "vars",
                                "eval", "exec", "compile", "__import__", "__builtins__"))

    def __init__(self, servers):
        self.servers = servers
        self.calls = []
        self.dynamic = False

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                f.value.id in self.servers and isinstance(f.value.ctx, ast.Load):
            if f.attr.startswith("__"):
                self.dynamic = True
            pair = [f.value.id, f.attr]
            if pair not in self.calls:
                self.calls.append(pair)
            for child in node.args + node.keywords:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in self.servers or node.id in self._DYNAMIC_NAMES:
            self.dynamic = True

    def visit_Attribute(self, node):
        if node.attr.startswith("__"):
            self.dynamic = True
        self.generic_visit(node)

    def _names(self, node):
        for name in node.names:
            if name.name in self.servers or (name.asname or "") in self.servers:
                self.dynamic = True

    visit_Global = visit_Nonlocal = _names

    def visit_arg(self, node):
        if node.arg in self.servers:
            self.dynamic = True
        self.generic_visit(node)


def _analyze(msg, servers):
    try:
        tree = ast.parse(msg.get("code", ""), _SCRIPT)
    except (SyntaxError, ValueError) as e:
        message = getattr(e, "msg", None) or str(e)
        return {"type": "analysis", "syntax_ok": False,
                "error": {"message": _clean_str(message), "line": getattr(e, "lineno", 0) or 0}}
    a = _Analysis(servers)
    a.visit(tree)
    return {"type": "analysis", "syntax_ok": True, "calls": a.calls, "dynamic": a.dynamic}


def _limits(msg):
    raw = msg.get("limits") if isinstance(msg.get("limits"), dict) else {}

    def num(key, default):
        v = raw.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else default

    return {"cpu_s": num("cpu_s", 10), "memory_mb": num("memory_mb", 256),
            "output_bytes": num("output_bytes", 1 << 20)}


def _servers(msg):
    raw = msg.get("servers") if isinstance(msg.get("servers"), dict) else {}
    servers = {}
    for name, tools in raw.items():
        if isinstance(name, str) and name.isidentifier() and isinstance(tools, list):
            servers[name] = [t for t in tools if isinstance(t, str) and t.isidentifier()
                             and not t.startswith("_")]
    return servers


def _frame_cap(limits):
    """The largest frame the child sends: what the gateway accepts from it (its output, three
    times over for JSON escaping, and 64 KiB for the rest), never over the wire's 16 MiB."""
    return min(_gatehouse.FRAME_MAX, 3 * limits["output_bytes"] + 65536)


def _frame_text(frame, limits):
    """The frame as JSON, within _frame_cap: a result too large even without the output is
    dropped (status "limit", ResultTooLarge), then the output is cut (output_truncated)."""
    cap = _frame_cap(limits)
    text = _dumps(frame)
    size = len(text.encode("utf-8"))
    if size <= cap or frame.get("type") != "done":
        return text
    without_output = len(_dumps(dict(frame, output="")).encode("utf-8"))
    if frame.get("result") is not None and without_output > cap:
        frame["result"] = None
        frame["status"] = "limit"
        frame["error"] = {"type": "ResultTooLarge",
                          "message": "result is too large to return (%d bytes of JSON, at most %d)"
                          % (size, cap),
                          "line": 0, "hint": "return less data in result; print a summary"}
        text = _dumps(frame)
        size = len(text.encode("utf-8"))
    output = frame["output"]
    while size > cap and output:
        output = output[: max(0, len(output) * cap // size - 1024)]
        frame["output"] = output
        frame["output_truncated"] = True
        text = _dumps(frame)
        size = len(text.encode("utf-8"))
    return text


def child_main(run_text):
    """Runs one script in a confined child; returns the exit code."""
    _lock_imports()
    try:
        msg = _json_loads(run_text)
        servers = _servers(msg)
        limits = _limits(msg)
        global _call_cap
        _call_cap = _frame_cap(limits)
        if msg.get("mode") == "analyze":
            frame = _analyze(msg, servers)
        else:
            frame = _execute(msg, servers, limits)
        text = _frame_text(frame, limits)
    except MemoryError:
        # The limit was reached outside the script (compiling a huge one, or the answer).
        msg = frame = None
        gc.collect()
        _gatehouse.send_limit("MemoryError", "memory limit reached outside the script")
        return 0
    _gatehouse.send(text)
    return 0
