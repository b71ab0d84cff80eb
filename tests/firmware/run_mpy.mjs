// Run MicroPython scripts under the real MicroPython (WebAssembly port) in Node.js.
//
//   node run_mpy.mjs [--heap 4m] [--lib DIR]... [--flash-dir DIR]
//                    [--serve [--ctl-in FD --ctl-out FD]] SCRIPT.py [SCRIPT2.py ...]
//
// Every *.py and *.mpy in each --lib DIR is written to /lib of the interpreter's in-memory
// filesystem.  Scripts run one after another, each in a FRESH interpreter (a simulated
// reset); files under /flash are carried from one to the next, as a node's flash
// survives a reset.  An uncaught Python exception prints its traceback to stderr and
// exits 1 -- the package's own CLI exits 0 on exceptions, so tests must not use it.
//
// --serve: stdin/stdout become a byte pipe for the script (a live serial line): the
// script imports `hostio` and calls hostio.read() -> hex string of bytes received,
// hostio.write(hex) to send, hostio.eof() -> true once stdin closed.  Python's own
// print() output then goes to stderr so it cannot corrupt the line.  --ctl-in/--ctl-out
// name two inherited file descriptors for a line-based control channel:
// hostio.ctl_read() -> one line or "" and hostio.ctl_write(text).
//
// --flash-dir: /flash is loaded from DIR before the first script and written back after
// the last one -- a node's flash surviving a process restart.
import { readFileSync, readdirSync, writeFileSync, mkdirSync, writeSync, statSync } from "node:fs";
import { join, basename } from "node:path";
import { Socket } from "node:net";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript/micropython.mjs";

let heap = 4 * 1024 * 1024;
const libs = [];
const scripts = [];
let serve = false;
let flashDir = null;
let ctlIn = null;
let ctlOut = null;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--heap") {
    const v = argv[++i];
    const m = /^(\d+)([km]?)$/i.exec(v);
    heap = parseInt(m[1], 10) * ({ k: 1024, m: 1048576, "": 1 })[m[2].toLowerCase()];
  } else if (a === "--lib") libs.push(argv[++i]);
  else if (a === "--serve") serve = true;
  else if (a === "--flash-dir") flashDir = argv[++i];
  else if (a === "--ctl-in") ctlIn = parseInt(argv[++i], 10);
  else if (a === "--ctl-out") ctlOut = parseInt(argv[++i], 10);
  else scripts.push(a);
}
if (scripts.length === 0) {
  console.error("usage: run_mpy.mjs [--heap N] [--lib DIR]... [--serve] SCRIPT...");
  process.exit(2);
}

const pyOut = serve ? (d) => process.stderr.write(d) : (d) => process.stdout.write(d);
let rx = [];
let eof = false;
if (serve) {
  process.stdin.on("data", (d) => rx.push(d));
  process.stdin.on("end", () => { eof = true; });
}
let ctlBuf = "";
const ctlLines = [];
if (ctlIn !== null) {
  // A net.Socket, not fs.createReadStream: a blocking pipe read parked in libuv's
  // thread pool would keep process.exit() from finishing.
  new Socket({ fd: ctlIn, readable: true, writable: false }).on("data", (d) => {
    ctlBuf += d.toString("utf8");
    let k;
    while ((k = ctlBuf.indexOf("\n")) >= 0) {
      ctlLines.push(ctlBuf.slice(0, k));
      ctlBuf = ctlBuf.slice(k + 1);
    }
  });
}

function loadDir(host, guest, out) {
  for (const n of readdirSync(host)) {
    const hp = join(host, n);
    const gp = guest + "/" + n;
    if (statSync(hp).isDirectory()) { out.push([gp, null]); loadDir(hp, gp, out); }
    else out.push([gp, readFileSync(hp)]);
  }
}

function listFlash(FS, dir, out) {
  let names;
  try { names = FS.readdir(dir); } catch { return; }
  for (const n of names) {
    if (n === "." || n === "..") continue;
    const p = dir + "/" + n;
    const st = FS.stat(p);
    if (FS.isDir(st.mode)) { out.push([p, null]); listFlash(FS, p, out); }
    else out.push([p, FS.readFile(p)]);
  }
}

let flash = [];
if (flashDir !== null) loadDir(flashDir, "/flash", flash);
for (const script of scripts) {
  const mp = await loadMicroPython({ heapsize: heap, stdout: pyOut, stderr: (d) => process.stderr.write(d), linebuffer: false });
  mp.FS.mkdir("/lib");
  for (const dir of libs) {
    for (const n of readdirSync(dir)) {
      if (n.endsWith(".py") || n.endsWith(".mpy")) mp.FS.writeFile("/lib/" + n, readFileSync(join(dir, n)));
    }
  }
  try { mp.FS.mkdir("/flash"); } catch { /* exists */ }
  for (const [p, data] of flash) {
    if (data === null) { try { mp.FS.mkdir(p); } catch { /* exists */ } }
    else mp.FS.writeFile(p, data);
  }
  if (serve) {
    mp.registerJsModule("hostio", {
      read: () => {
        if (rx.length === 0) return "";
        const b = Buffer.concat(rx);
        rx = [];
        return b.toString("hex");
      },
      write: (hex) => { process.stdout.write(Buffer.from(hex, "hex")); return hex.length / 2; },
      eof: () => eof && rx.length === 0,
      ctl_read: () => ctlLines.length ? ctlLines.shift() : "",
      ctl_write: (text) => { if (ctlOut !== null) writeSync(ctlOut, text + "\n"); return 0; },
    });
  }
  try {
    await mp.runPythonAsync(readFileSync(script, "utf8"));
  } catch (e) {
    if (e && e.name === "PythonError") {
      if (e.type !== "SystemExit") {
        process.stderr.write(`\n${basename(script)}: uncaught ${e.type}\n${e.message}\n`);
        process.exit(1);
      }
    } else {
      throw e;
    }
  }
  flash = [];
  listFlash(mp.FS, "/flash", flash);
}
if (flashDir !== null) {
  for (const [p, data] of flash) {
    const hp = join(flashDir, p.slice("/flash/".length));
    if (data === null) mkdirSync(hp, { recursive: true });
    else writeFileSync(hp, data);
  }
}
process.exit(0);
