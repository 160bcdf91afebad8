/*
 * pyhost.c - CPython embedded in gatehouse-sandbox (see pyhost.h): the isolated start, the
 * _gatehouse module the harness talks through, and the one call a child makes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "sandbox/pyhost.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/confine.h"
#include "sandbox/frame.h"
#include "sandbox/slog.h"

/* The harness source, generated from src/sandbox/harness.py by the Makefile. */
#include "sandbox/harness_py.h"

static PyObject *child_main_fn;  /* harness.child_main, owned */
static PyObject *protocol_error; /* _gatehouse.ProtocolError, owned by the module */
static char py_version[32];

/* ---- the _gatehouse module ------------------------------------------------------------------- */

/* send(text): one frame on the execution socket. */
static PyObject *gh_send(PyObject *self, PyObject *arg)
{
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (text == NULL)
        return NULL;
    if (sandbox_frame_write(SANDBOX_EXEC_FD, text, (size_t)len) != 0) {
        PyErr_Format(protocol_error, "writing to the gateway failed: %s", strerror(errno));
        return NULL;
    }
    Py_RETURN_NONE;
}

/* After an answer too large for the memory limit the stream is out of step (the rest of that
 * frame is still unread), so no further call may be made. Sending the last frame still works. */
static int stream_broken;

/* stream_broken() -> bool */
static PyObject *gh_stream_broken(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(stream_broken);
}

/* recv() -> str: blocks for one frame from the gateway. */
static PyObject *gh_recv(PyObject *self, PyObject *unused)
{
    char *body = NULL;
    size_t len = 0;
    if (stream_broken) {
        PyErr_SetString(protocol_error, "an earlier answer was lost to the memory limit");
        return NULL;
    }
    /* The GIL stays held: the child has one thread, and could not start another. */
    errno = 0;
    sandbox_frame_result_t rc = sandbox_frame_read(SANDBOX_EXEC_FD, &body, &len);
    if (rc == SANDBOX_FRAME_ERROR && errno == ENOMEM) {
        stream_broken = 1;
        return PyErr_NoMemory();
    }
    if (rc != SANDBOX_FRAME_READY) {
        PyErr_SetString(protocol_error, rc == SANDBOX_FRAME_EOF
                                            ? "the gateway closed the socket"
                                            : "reading from the gateway failed");
        return NULL;
    }
    PyObject *text = PyUnicode_DecodeUTF8(body, (Py_ssize_t)len, "replace");
    free(body);
    return text;
}

/* A "done" frame with status "limit", built without allocating, for when the interpreter is
 * out of memory. Both strings are the caller's constants: short, no quote or backslash. */
static int send_limit_frame(const char *type, const char *message)
{
    static char frame[512];
    int n = snprintf(frame, sizeof(frame),
                     "{\"type\":\"done\",\"status\":\"limit\",\"output\":\"\","
                     "\"output_truncated\":false,\"result\":null,\"error\":{\"type\":\"%s\","
                     "\"message\":\"%s\",\"line\":0}}",
                     type, message);
    if (n < 0 || (size_t)n >= sizeof(frame) || strpbrk(type, "\"\\") || strpbrk(message, "\"\\"))
        return -1;
    return sandbox_frame_write(SANDBOX_EXEC_FD, frame, (size_t)n);
}

/* send_limit(type, message): send_limit_frame for the harness. */
static PyObject *gh_send_limit(PyObject *self, PyObject *args)
{
    const char *type, *message;
    if (!PyArg_ParseTuple(args, "ss", &type, &message))
        return NULL;
    if (send_limit_frame(type, message) != 0) {
        PyErr_SetString(protocol_error, "send_limit: writing to the gateway failed");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef gh_methods[] = {
    {"send", gh_send, METH_O, "send(text): one frame to the gateway"},
    {"recv", gh_recv, METH_NOARGS, "recv() -> str: one frame from the gateway"},
    {"stream_broken", gh_stream_broken, METH_NOARGS, "an answer was lost to the memory limit"},
    {"send_limit", gh_send_limit, METH_VARARGS, "a done frame with status limit, no allocation"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef gh_module = {
    PyModuleDef_HEAD_INIT,
    "_gatehouse",
    "the execution socket of a sandbox child",
    -1,
    gh_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

static PyObject *init_gatehouse_module(void)
{
    PyObject *m = PyModule_Create(&gh_module);
    if (m == NULL)
        return NULL;
    /* A BaseException: a broken socket must end the script, not be caught by its excepts. */
    protocol_error = PyErr_NewException("_gatehouse.ProtocolError", PyExc_BaseException, NULL);
    if (protocol_error == NULL || PyModule_AddObjectRef(m, "ProtocolError", protocol_error) < 0 ||
        PyModule_AddIntConstant(m, "FRAME_MAX", (long)SANDBOX_FRAME_MAX) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* ---- start ----------------------------------------------------------------------------------- */

static int init_interpreter(void)
{
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.user_site_directory = 0;
    config.use_environment = 0;
    config.safe_path = 1;
    config.install_signal_handlers = 0;
    config.write_bytecode = 0;
    config.parse_argv = 0;
    config.buffered_stdio = 0;
    PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, "gatehouse-sandbox");
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        sandbox_log("crit", "python: initialisation failed: %s; exiting",
                    st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }
    return 0;
}

static void log_python_error(const char *what)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    sandbox_log("crit", "python: %s: %s: %s; exiting", what,
                type ? ((PyTypeObject *)type)->tp_name : "?", msg ? msg : "?");
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

static int load_harness(void)
{
    PyObject *code = Py_CompileString(sandbox_harness_py, "<gatehouse-harness>", Py_file_input);
    if (code == NULL) {
        log_python_error("compiling the harness");
        return -1;
    }
    PyObject *mod = PyImport_ExecCodeModule("_gatehouse_harness", code);
    Py_DECREF(code);
    if (mod == NULL) {
        log_python_error("loading the harness and its modules");
        return -1;
    }
    child_main_fn = PyObject_GetAttrString(mod, "child_main");
    Py_DECREF(mod);
    if (child_main_fn == NULL) {
        log_python_error("finding child_main in the harness");
        return -1;
    }
    return 0;
}

int sandbox_py_init(void)
{
    if (PyImport_AppendInittab("_gatehouse", init_gatehouse_module) != 0) {
        sandbox_log("crit", "python: registering _gatehouse failed; exiting");
        return -1;
    }
    if (init_interpreter() != 0)
        return -1;
    const char *v = Py_GetVersion();
    size_t n = strcspn(v, " ");
    if (n >= sizeof(py_version))
        n = sizeof(py_version) - 1;
    memcpy(py_version, v, n);
    py_version[n] = '\0';
    return load_harness();
}

const char *sandbox_py_version(void)
{
    return py_version;
}

void sandbox_py_before_fork(void)
{
    PyOS_BeforeFork();
}

void sandbox_py_after_fork_parent(void)
{
    PyOS_AfterFork_Parent();
}

void sandbox_py_after_fork_child(void)
{
    PyOS_AfterFork_Child();
}

/* ---- a child's one call ---------------------------------------------------------------------- */

/* The harness could not finish: out of memory is still an answer the gateway can give. */
static int harness_failed(void)
{
    int out_of_memory = PyErr_ExceptionMatches(PyExc_MemoryError);
    PyErr_Clear();
    if (out_of_memory &&
        send_limit_frame("MemoryError", "memory limit reached outside the script") == 0)
        return 0;
    return SANDBOX_PY_EXIT_HARNESS;
}

int sandbox_py_child_main(const char *run_text, size_t run_len)
{
    PyObject *text = PyUnicode_DecodeUTF8(run_text, (Py_ssize_t)run_len, "replace");
    if (text == NULL)
        return harness_failed();
    PyObject *rc = PyObject_CallOneArg(child_main_fn, text);
    Py_DECREF(text);
    if (rc == NULL)
        return harness_failed();
    long code = PyLong_AsLong(rc);
    Py_DECREF(rc);
    return code == 0 ? 0 : SANDBOX_PY_EXIT_HARNESS;
}
