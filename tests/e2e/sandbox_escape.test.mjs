// sandbox_escape.test.mjs - gatehouse-sandbox on its own, through its wire format: hostile
// scripts that must each fail cleanly (issue 4's escape suite), the zygote unharmed after all of
// them, 50 executions at once, and the analysis mode.
//
// Node cannot pass a descriptor over a unix socket, so the tests talk JSON lines to
// build/sandbox-driver (tests/sandbox/driver.c), which plays the gateway's side: it starts the
// sandbox found beside $GATEHOUSE_BIN (build/gatehouse-sandbox, or build/asan/gatehouse-sandbox
// for the asan pass), sends each run with its execution socket, answers tool calls (echo, add,
// fail) and reports the last frame, the calls and how the child exited.
//
// Every case asserts the specific failure: the status, the error type and message, and where a
// script tried to leave a trace on the host (a file), that the trace is not there. The escapes
// that need os reach it the way a real attacker would (a module's globals, __subclasses__,
// frames, gc, __loader__), since the import gate is not the boundary: the kernel is.

import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

import { REPO_ROOT, gatehouseBin } from './harness.mjs';

const SANDBOX = path.join(path.dirname(gatehouseBin()), 'gatehouse-sandbox');
const DRIVER = path.resolve(REPO_ROOT, 'build/sandbox-driver');
const SERVERS = { t: ['echo', 'add', 'fail'] };
const LIMITS = { cpu_s: 5, memory_mb: 256, output_bytes: 65536 };

/** Starts the driver (and so one sandbox); run(job) resolves to the job's result line. */
function startDriver() {
    for (const bin of [SANDBOX, DRIVER]) {
        if (!fs.existsSync(bin)) throw new Error(`${bin} not found: run make (and make asan)`);
    }
    const child = spawn(DRIVER, [SANDBOX], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
        stderr += d;
        if (process.env.GATEHOUSE_E2E_VERBOSE) process.stderr.write(d);
    });
    const waiting = new Map();
    const events = [];
    let readyResolve;
    const ready = new Promise((resolve) => (readyResolve = resolve));
    let exitResolve;
    const exited = new Promise((resolve) => (exitResolve = resolve));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
        const msg = JSON.parse(line);
        events.push(msg);
        if (msg.ready) readyResolve(msg.ready);
        else if (msg.sandbox_exit || msg.sandbox_lost) exitResolve(msg);
        else if (waiting.has(msg.id)) {
            waiting.get(msg.id)(msg);
            waiting.delete(msg.id);
        }
    });
    let nextId = 1;
    return {
        ready,
        events,
        stderr: () => stderr,
        run(job) {
            const id = nextId++;
            const full = { id, mode: 'exec', servers: SERVERS, limits: LIMITS, ...job };
            const done = new Promise((resolve) => waiting.set(id, resolve));
            child.stdin.write(JSON.stringify(full) + '\n');
            return done;
        },
        killSandbox() {
            child.stdin.write(JSON.stringify({ kill_sandbox: true }) + '\n');
            return exited;
        },
        raw(text) {
            child.stdin.write(JSON.stringify({ raw: text }) + '\n');
        },
        async close() {
            child.stdin.end();
            return exited;
        },
    };
}

const lines = (...l) => l.join('\n');
// How a script reaches os without importing it: a module that imported it.
const OS = 'import random\nos = random._os\n';

function assertPermissionError(r, line) {
    assert.equal(r.exited.code, 0, `child exit: ${JSON.stringify(r.exited)}`);
    assert.ok(r.frame, 'a done frame');
    assert.equal(r.frame.status, 'runtime', JSON.stringify(r.frame));
    assert.equal(r.frame.error.type, 'PermissionError', JSON.stringify(r.frame.error));
    assert.match(r.frame.error.message, /Operation not permitted/);
    if (line) assert.equal(r.frame.error.line, line);
}

function assertImportBlocked(r, mod) {
    assert.equal(r.frame.status, 'runtime');
    assert.equal(r.frame.error.type, 'ImportError');
    assert.equal(r.frame.error.message, `module '${mod}' is not available in the sandbox`);
    assert.equal(r.frame.error.line, 1);
    assert.match(r.frame.error.hint, /modules available: .*json/);
}

const trace = (name) => `/tmp/gatehouse-escape-${name}-${crypto.randomBytes(4).toString('hex')}`;

// Each case: name, the job (code, optional limits/kill), and the check of its result.
const CASES = [
    ['open /etc/passwd', { code: "print(open('/etc/passwd').read())" }, (r) => {
        assert.equal(r.frame.status, 'runtime');
        assert.equal(r.frame.error.type, 'NameError');
        assert.equal(r.frame.error.message, "name 'open' is not defined");
        assert.match(r.frame.error.hint, /no files/);
    }],
    ['os.open /etc/passwd via a module global', { code: OS + "os.open('/etc/passwd', os.O_RDONLY)" },
        (r) => assertPermissionError(r, 3)],
    ['io.open /etc/passwd', { code: "import io\nprint(io.open('/etc/passwd').read())" },
        (r) => assertPermissionError(r, 2)],
    ['list the root directory', { code: OS + "print(os.listdir('/'))" }, (r) => assertPermissionError(r, 3)],
    ...(() => {
        const file = trace('write');
        return [['write a file', { code: `import io\nio.open('${file}', 'w').write('pwned')` }, (r) => {
            assertPermissionError(r, 2);
            assert.equal(fs.existsSync(file), false, `${file} must not exist`);
        }]];
    })(),
    ['import os', { code: 'import os' }, (r) => assertImportBlocked(r, 'os')],
    ['import subprocess', { code: 'import subprocess' }, (r) => assertImportBlocked(r, 'subprocess')],
    ['import socket', { code: 'import socket' }, (r) => assertImportBlocked(r, 'socket')],
    ['import ctypes', { code: 'import ctypes' }, (r) => assertImportBlocked(r, 'ctypes')],
    ['from sys import modules', { code: 'from sys import modules' }, (r) => assertImportBlocked(r, 'sys')],
    ...(() => {
        const file = trace('system');
        return [['os.system through __subclasses__', {
            code: lines(
                "wrap = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]",
                "system = wrap.__init__.__globals__['system']",
                `result = system('touch ${file}')`),
        }, (r) => {
            assert.equal(r.frame.status, 'ok');
            assert.notEqual(r.frame.result, 0, 'the shell must not have run');
            assert.equal(fs.existsSync(file), false, `${file} must not exist`);
        }]];
    })(),
    ['fork', { code: OS + 'pid = os.fork()' }, (r) => assertPermissionError(r, 3)],
    ['fork bomb', { code: OS + 'while True:\n    os.fork()' }, (r) => assertPermissionError(r, 4)],
    ['exec /bin/sh', { code: OS + "os.execv('/bin/sh', ['sh', '-c', 'id'])" }, (r) => assertPermissionError(r, 3)],
    ['posix_spawn', { code: OS + "os.posix_spawn('/bin/true', ['true'], {})" }, (r) => assertPermissionError(r, 3)],
    ['read /proc/self/environ', { code: OS + "os.open('/proc/self/environ', os.O_RDONLY)" },
        (r) => assertPermissionError(r, 3)],
    ['read the parent\'s memory', { code: OS + "os.open('/proc/%d/mem' % os.getppid(), os.O_RDONLY)" },
        (r) => assertPermissionError(r, 3)],
    ['open a network connection', {
        code: lines(
            "bi = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'BuiltinImporter'][0]",
            "sock_mod = bi.create_module(bi.find_spec('_socket'))",
            's = sock_mod.socket(2, 1)',
            "s.connect(('127.0.0.1', 22))"),
    }, (r) => assertPermissionError(r, 3)],
    ['signal the parent', { code: OS + 'os.kill(os.getppid(), 9)' }, (r) => assertPermissionError(r, 3)],
    ['signal every process', { code: OS + 'os.kill(-1, 9)' }, (r) => assertPermissionError(r, 3)],
    ['write to fd 1', { code: OS + "os.write(1, b'x')" }, (r) => assertPermissionError(r, 3)],
    ['write to fd 2', { code: OS + "os.write(2, b'x')" }, (r) => assertPermissionError(r, 3)],
    ['read fd 0', { code: OS + 'os.read(0, 1)' }, (r) => assertPermissionError(r, 3)],
    ['write to fd 4', { code: OS + "os.write(4, b'x')" }, (r) => assertPermissionError(r, 3)],
    ['dup the execution socket', { code: OS + 'os.dup(3)' }, (r) => assertPermissionError(r, 3)],
    ['become root again', { code: OS + 'os.setuid(0)' }, (r) => assertPermissionError(r, 3)],
    ['chroot out', { code: OS + "os.chroot('/')" }, (r) => assertPermissionError(r, 3)],
    ['infinite loop (CPU limit)', { code: 'while True:\n    pass', limits: { ...LIMITS, cpu_s: 1 } }, (r) => {
        assert.equal(r.killed, false, 'the kernel, not the driver, must stop it');
        assert.equal(r.frame, null);
        assert.equal(r.exited.signal, 9);
        assert.ok(r.ms < 15000, `stopped after ${r.ms} ms`);
    }],
    ['memory bomb (growing list)', { code: "x = []\nwhile True:\n    x.append(' ' * 10**7)" }, (r) => {
        assert.equal(r.frame.status, 'limit');
        assert.equal(r.frame.error.type, 'MemoryError');
        assert.equal(r.frame.error.line, 3);
        assert.match(r.frame.error.hint, /256 MiB/);
    }],
    ['memory bomb (one allocation)', { code: "x = 'x' * (1 << 40)" }, (r) => {
        assert.equal(r.frame.status, 'limit');
        assert.equal(r.frame.error.type, 'MemoryError');
    }],
    ['a script too large to compile within the memory limit', {
        code: `x = [${Array(300000).fill('1').join(',')}]`, limits: { ...LIMITS, memory_mb: 30 },
    }, (r) => {
        assert.equal(r.exited.code, 0);
        assert.equal(r.frame.status, 'limit');
        assert.equal(r.frame.error.type, 'MemoryError');
    }],
    ['a tool answer larger than the memory limit', {
        code: lines('try:', '    x = t.big(size=15000000)', 'except MemoryError:', '    pass',
            't.echo(a=1)'),
        servers: { t: ['big', 'echo'] }, limits: { ...LIMITS, memory_mb: 32 },
    }, (r) => {
        // Whether the answer could not even be read (the stream is then out of step, and no
        // further call is made) or could not be decoded, the script ends within its limit.
        assert.equal(r.exited.code, 0);
        assert.ok(['ok', 'limit'].includes(r.frame.status), JSON.stringify(r.frame));
        if (r.frame.status === 'limit') {
            assert.equal(r.frame.error.type, 'MemoryError');
            assert.deepEqual(r.calls.map((c) => c.tool), ['big']);
        } else {
            assert.deepEqual(r.calls.map((c) => c.tool), ['big', 'echo']);
        }
    }],
    ['deep recursion', { code: 'def f(n):\n    return f(n + 1)\nf(0)' }, (r) => {
        assert.equal(r.frame.status, 'limit');
        assert.equal(r.frame.error.type, 'RecursionError');
        assert.equal(r.frame.error.line, 2);
    }],
    ['a million-line print', { code: 'for i in range(10**6):\n    print(i)' }, (r) => {
        assert.equal(r.frame.status, 'limit');
        assert.equal(r.frame.output_truncated, true);
        assert.equal(Buffer.byteLength(r.frame.output), LIMITS.output_bytes);
        assert.ok(r.frame.output.startsWith('0\n1\n2\n'));
        assert.equal(r.frame.error.type, 'OutputLimitExceeded');
    }],
    ['catching the output limit does not help', {
        code: lines('for i in range(10**5):', '    try:', "        print('x' * 100)", '    except BaseException:', '        pass', "result = 'done'"),
    }, (r) => {
        assert.equal(r.frame.status, 'limit');
        assert.equal(r.frame.output_truncated, true);
    }],
    ['a result too large for a frame', { code: "result = 'x' * (20 << 20)" }, (r) => {
        assert.equal(r.frame.status, 'limit');
        assert.equal(r.frame.error.type, 'ResultTooLarge');
        assert.equal(r.frame.result, null);
    }],
    ['a result over what the gateway accepts', { code: "result = 'x' * 300000" }, (r) => {
        // 3 x output_bytes + 64 KiB = 262144 bytes for the test's limits
        assert.equal(r.frame.status, 'limit');
        assert.equal(r.frame.error.type, 'ResultTooLarge');
        assert.match(r.frame.error.message, /at most 262144/);
    }],
    ['output that JSON escapes six-fold is cut to fit', { code: "print('\\x01' * 60000)\nresult = 1" }, (r) => {
        assert.equal(r.frame.status, 'ok');
        assert.equal(r.frame.result, 1);
        assert.equal(r.frame.output_truncated, true);
        assert.ok(r.frame.output.length > 30000 && r.frame.output.length < 60001, `${r.frame.output.length}`);
    }],
    ['tool arguments over what the gateway accepts', { code: "t.echo(blob='x' * 300000)" }, (r) => {
        assert.equal(r.frame.status, 'runtime');
        assert.equal(r.frame.error.type, 'ValueError');
        assert.match(r.frame.error.message, /too large to send/);
        assert.deepEqual(r.calls, []);
    }],
    ['gc.get_objects to the real builtins', {
        code: lines(
            OS + "gc = os.sys.modules['gc']",
            "fns = [o for o in gc.get_objects() if type(o).__name__ == 'function' and '__builtins__' in o.__globals__]",
            "real = [f.__globals__['__builtins__'] for f in fns if isinstance(f.__globals__['__builtins__'], dict) and 'open' in f.__globals__['__builtins__']][0]",
            "real['open']('/etc/passwd').read()"),
    }, (r) => assertPermissionError(r, 6)],
    ['frame walking through a traceback', {
        code: lines(
            'try:', '    1 / 0', 'except ZeroDivisionError as e:', '    f = e.__traceback__.tb_frame',
            'while f.f_back is not None:', '    f = f.f_back',
            "posix = f.f_globals['sys'].modules['posix']",
            "posix.open('/etc/shadow', 0)"),
    }, (r) => assertPermissionError(r, 8)],
    ['sys._getframe to the harness', {
        code: lines(OS + 'g = os.sys._getframe(1).f_globals', "g['_real_import']('socket')"),
    }, (r) => {
        assert.equal(r.frame.status, 'runtime');
        assert.equal(r.frame.error.type, 'ModuleNotFoundError');
    }],
    ['__builtins__ recovery through catch_warnings', {
        code: lines(
            "cw = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings'][0]",
            "imp = cw()._module.__builtins__['__import__']",
            "os = imp('os')",
            "os.open('/etc/passwd', 0)"),
    }, (r) => assertPermissionError(r, 4)],
    ['__loader__ reading a file', { code: "import json\njson.__loader__.get_data('/etc/passwd')" },
        (r) => assertPermissionError(r, 2)],
    ['wall-clock kill of a sleeping script', { code: 'import time\ntime.sleep(60)', kill_after_ms: 300 }, (r) => {
        assert.equal(r.killed, true);
        assert.equal(r.frame, null);
        assert.equal(r.exited.signal, 9);
        assert.ok(r.ms < 10000, `killed after ${r.ms} ms`);
    }],
];

const BENIGN = {
    code: lines('import json, statistics', 'xs = [t.add(a=i, b=1) for i in range(3)]',
        "print('mean', statistics.mean(xs))", "result = {'xs': xs, 'echo': t.echo(k='v')}"),
};

function assertBenign(r) {
    assert.equal(r.exited.code, 0);
    assert.equal(r.frame.status, 'ok', JSON.stringify(r.frame));
    assert.equal(r.frame.output, 'mean 2\n');
    assert.deepEqual(r.frame.result, { xs: [1, 2, 3], echo: { k: 'v' } });
    assert.deepEqual(r.calls.map((c) => `${c.server}.${c.tool}`), ['t.add', 't.add', 't.add', 't.echo']);
}

// Running, that is: a zombie waiting for whoever inherited it to reap it counts as gone.
const alive = (pid) => {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
        return false;
    }
};

describe('sandbox escape suite', () => {
    let d, ready;
    const pids = [];
    before(async () => {
        d = startDriver();
        ready = await d.ready;
    });

    test('ready names the interpreter and the confinement', (t) => {
        assert.equal(ready.op, 'ready');
        assert.match(ready.python, /^3\.\d+\.\d+$/);
        assert.equal(typeof ready.seccomp, 'boolean');
        if (ready.namespaces.length === 0) t.diagnostic('no namespaces on this kernel: the fallback runs');
    });

    assert.ok(CASES.length >= 25);
    for (const [name, job, check] of CASES) {
        test(name, async (t) => {
            if (!ready.seccomp) {
                t.skip('this kernel refused the seccomp filter: the escape suite cannot hold');
                return;
            }
            const r = await d.run(job);
            if (r.pid) pids.push(r.pid);
            check(r);
        });
    }

    test('malformed control frames are ignored', async () => {
        d.raw('not json');
        d.raw('{"op":"bogus"}');
        d.raw('{"op":"kill","id":999999}');
        const r = await d.run({ code: 'x = 1', no_socket: true });
        assert.equal(r.exited.code, 125);
        assert.match(r.exited.error, /no execution socket/);
    });

    test('a script holding U+0000 is a syntax error, not a lost run', async () => {
        const r = await d.run({ code: 'x = 1\u0000' });
        assert.equal(r.frame.status, 'syntax');
        assert.match(r.frame.error.message, /null bytes/);
    });

    test('a script that sends its own frames only confuses its own execution', async () => {
        const r = await d.run({
            code: lines(OS + "gh = os.sys.modules['_gatehouse']",
                "gh.send('{\"type\":\"done\",\"status\":\"ok\",\"forged\":true}')",
                'gh.send(\'{"op":"kill","id":1}\')', "result = 'after'"),
        });
        assert.equal(r.exited.code, 0);
        // The driver keeps the last frame: the real done, after the forged ones.
        assert.equal(r.frame.status, 'ok');
        assert.equal(r.frame.result, 'after');
    });

    test('nothing of one execution reaches the next', async () => {
        const first = await d.run({ code: "import json\njson.leak = 'secret'\nt.leak = 1" });
        assert.equal(first.frame.status, 'runtime'); // server objects are read-only
        assert.equal(first.frame.error.type, 'AttributeError');
        const second = await d.run({ code: "import json\nresult = [hasattr(json, 'leak'), hasattr(t, 'leak')]" });
        assert.deepEqual(second.frame.result, [false, false]);
    });

    test('the harness survives a script that breaks what it uses', async () => {
        const r = await d.run({
            code: lines('import json', "json.dumps = json.loads = lambda *a, **k: 'broken'",
                'class Nasty(Exception):', '    def __str__(self):', "        raise ValueError('no')",
                "x = t.echo(k=[1])", 'raise Nasty()'),
        });
        assert.equal(r.frame.status, 'runtime');
        assert.equal(r.frame.error.type, 'Nasty');
        assert.equal(r.frame.error.message, '<unprintable Nasty>');
        assert.equal(r.frame.error.line, 7);
        assert.deepEqual(r.calls.map((c) => c.args), [{ k: [1] }]);
    });

    test('keyword arguments passed as None are left out of the call, nested None is kept', async () => {
        const r = await d.run({
            code: lines("a = t.echo(k='v', opt=None, n=0, f=False, e='')",
                "b = t.echo(nested={'x': None}, items=[None])", 'c = t.echo(only=None)',
                'result = [a, b, c]'),
        });
        assert.equal(r.frame.status, 'ok', JSON.stringify(r.frame));
        assert.deepEqual(r.calls.map((c) => c.args),
            [{ k: 'v', n: 0, f: false, e: '' }, { nested: { x: null }, items: [null] }, {}]);
        assert.deepEqual(r.frame.result,
            [{ k: 'v', n: 0, f: false, e: '' }, { nested: { x: null }, items: [null] }, {}]);
    });

    test('print(file=...) writes to that file, as in Python', async () => {
        const r = await d.run({
            code: lines('import io', 'buf = io.StringIO()', "print('a', 'b', sep='-', file=buf)",
                "print('shown')", 'result = buf.getvalue()'),
        });
        assert.equal(r.frame.status, 'ok');
        assert.equal(r.frame.output, 'shown\n');
        assert.equal(r.frame.result, 'a-b\n');
    });

    test('hints name the close match among servers and tools', async () => {
        const server = await d.run({ code: 'x = 1\ntt.echo(a=1)' });
        assert.equal(server.frame.error.type, 'NameError');
        assert.equal(server.frame.error.line, 2);
        assert.equal(server.frame.error.hint, 'did you mean t? servers available: t');
        const tool = await d.run({ code: 't.ecko(a=1)' });
        assert.equal(tool.frame.error.type, 'AttributeError');
        assert.equal(tool.frame.error.message, "server 't' has no tool 'ecko'");
        assert.equal(tool.frame.error.hint, 'did you mean echo? tools of t: echo, add, fail');
    });

    test('after every case the zygote still runs a benign script', async () => {
        assertBenign(await d.run(BENIGN));
    });

    test('no child of the suite is left running', () => {
        assert.ok(pids.length >= 25);
        assert.deepEqual(pids.filter(alive), []);
    });

    after(async () => {
        const end = await d.close();
        assert.deepEqual(end, { sandbox_exit: { code: 0 } }, d.stderr());
    });
});

describe('sandbox concurrency', () => {
    test('50 executions at once, each with tool calls, all correct', async () => {
        const d = startDriver();
        await d.ready;
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => d.run({
            code: lines(`n = t.add(a=${i}, b=1000)`, `e = t.echo(i=${i})`, `print('job', ${i})`, 'result = [n, e]'),
        })));
        results.forEach((r, i) => {
            assert.equal(r.frame.status, 'ok', JSON.stringify(r.frame));
            assert.deepEqual(r.frame.result, [i + 1000, { i }]);
            assert.equal(r.frame.output, `job ${i}\n`);
            assert.equal(r.calls.length, 2);
        });
        assert.equal(new Set(results.map((r) => r.pid)).size, 50, 'each run in its own child');
        assert.deepEqual(await d.close(), { sandbox_exit: { code: 0 } });
    });
});

describe('sandbox lifecycle', () => {
    test('children die with the zygote', async () => {
        const d = startDriver();
        await d.ready;
        // Two busy children, one a CPU loop and one asleep, then the zygote is SIGKILLed.
        d.run({ code: 'while True:\n    pass', limits: { ...LIMITS, cpu_s: 60 } });
        d.run({ code: 'import time\ntime.sleep(60)' });
        await new Promise((resolve) => setTimeout(resolve, 500));
        const lost = await d.killSandbox();
        assert.equal(lost.sandbox_lost, true);
        assert.equal(lost.pids.length, 2);
        const deadline = Date.now() + 5000;
        while (lost.pids.some(alive) && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.deepEqual(lost.pids.filter(alive), []);
    });
});

describe('sandbox analysis mode', () => {
    let d;
    before(async () => {
        d = startDriver();
        await d.ready;
    });
    const analyze = (code) => d.run({ mode: 'analyze', code }).then((r) => r.frame);

    test('lists server.tool calls, in order, once each', async () => {
        const a = await analyze(lines('x = t.echo(m=1)', 'for i in range(3):', '    t.add(a=i, b=t.echo(q=2))', 'print(len("t"))'));
        assert.deepEqual(a, { type: 'analysis', syntax_ok: true, calls: [['t', 'echo'], ['t', 'add']], dynamic: false });
    });

    test('aliasing, getattr and dunder access are dynamic', async () => {
        for (const code of ['s = t\ns.echo()', "getattr(t, 'echo')()", "globals()['t'].echo()", 'f(t)',
            '().__class__', 't.__class__()', 'def g(t):\n    pass', 'x = t.echo']) {
            const a = await analyze(code);
            assert.equal(a.dynamic, true, code);
        }
    });

    test('a syntax error gives its message and line', async () => {
        const a = await analyze('x = 1\ny = (\n');
        assert.equal(a.syntax_ok, false);
        assert.equal(a.error.line, 2);
        assert.match(a.error.message, /never closed/);
    });

    test('nothing is executed while analysing', async () => {
        const r = await d.run({ mode: 'analyze', code: 't.echo(a=1)\nwhile True: pass' });
        assert.deepEqual(r.calls, []);
        assert.deepEqual(r.frame.calls, [['t', 'echo']]);
    });

    after(async () => {
        assert.deepEqual(await d.close(), { sandbox_exit: { code: 0 } });
    });
});
