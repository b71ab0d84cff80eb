// Run MicroPython scripts under the real MicroPython (WebAssembly port) in Node.js.
//
//   node run_mpy.mjs [--heap 4m] [--lib DIR]... [--serve] SCRIPT.py [SCRIPT2.py ...]
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
// print() output then goes to stderr so it cannot corrupt the line.
import { readFileSync, readdirSync } from "node:fs";
import { join, basename } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript/micropython.mjs";

let heap = 4 * 1024 * 1024;
const libs = [];
const scripts = [];
let serve = false;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--heap") {
    const v = argv[++i];
    const m = /^(\d+)([km]?)$/i.exec(v);
    heap = parseInt(m[1], 10) * ({ k: 1024, m: 1048576, "": 1 })[m[2].toLowerCase()];
  } else if (a === "--lib") libs.push(argv[++i]);
  else if (a === "--serve") serve = true;
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
    });
  }
  try {
    await mp.runPythonAsync(readFileSync(script, "utf8"));
  } catch (e) {
    if (e && e.name === "PythonError") {
      if (e.type === "SystemExit") continue;
      process.stderr.write(`\n${basename(script)}: uncaught ${e.type}\n${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  flash = [];
  listFlash(mp.FS, "/flash", flash);
}
process.exit(0);
