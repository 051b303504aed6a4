// Starts what the browser test drives: the daemon with its SMSC simulator,
// and the console as a separate process (so the test can restart it).
import { spawn } from "node:child_process";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what, probe, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
}

function connects(addr) {
  return new Promise((resolve) => {
    const s = typeof addr === "string" ? net.connect(addr) : net.connect(addr.port, addr.host);
    s.on("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

/** Every process started, killed if the test exits without stopping them. */
const children = new Set();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

function run(cmd, args, name) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info" } });
  const logFile = fs.createWriteStream(path.join(ROOT, "target", "console-shots", `${name}.log`), { flags: "a" });
  child.stdout.pipe(logFile);
  child.stderr.pipe(logFile);
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 3000).unref();
  });
}

/** One JSON-lines request on a Unix socket (the simulator's control socket). */
function socketRequest(sock, req) {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      const i = buf.indexOf("\n");
      if (i >= 0) {
        s.destroy();
        const r = JSON.parse(buf.slice(0, i));
        r.ok ? resolve(r.result ?? r) : reject(new Error(JSON.stringify(r.error)));
      }
    });
    s.on("error", reject);
    s.write(JSON.stringify({ id: 1, ...req }) + "\n");
  });
}

const BIN = process.env.SMPPGW_BIN || path.join(ROOT, "target", "debug", "smppgw");

/** The demo config's `support` service sender. */
const SUPPORT_SENDER = "447400123456";

/** The demo configuration (config/demo.toml) re-pointed at `dir` and the
 *  given ports. */
function demoConfig(dir, simPort, metricsPort) {
  let toml = fs.readFileSync(path.join(ROOT, "config", "demo.toml"), "utf8");
  toml = toml
    .replace(/^path = .*$/m, `path = "${path.join(dir, "store")}"`)
    .replace(/^socket = .*$/m, `socket = "${path.join(dir, "agent.sock")}"`)
    .replace(/^listen = "127\.0\.0\.1:9187"$/m, `listen = "127.0.0.1:${metricsPort}"`)
    .replace(/^port = 2775$/m, `port = ${simPort}`);
  const file = path.join(dir, "smppgw.toml");
  fs.writeFileSync(file, toml);
  return file;
}

export async function startStack() {
  if (process.env.CONSOLE_TEST_FAKE) return startFake();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "smppgw-console-test-"));
  const sock = path.join(dir, "agent.sock");
  const [simPort, metricsPort, port] = [await freePort(), await freePort(), await freePort()];
  const config = demoConfig(dir, simPort, metricsPort);
  const control = path.join(dir, "sim.sock");
  const sim = run(BIN, ["sim", "--listen", `127.0.0.1:${simPort}`, "--control", control], "sim");
  await waitFor("the simulator", () => connects({ host: "127.0.0.1", port: simPort }));
  const daemon = run(BIN, ["run", "--config", config], "daemon");
  await waitFor("the agent socket", () => connects(sock));
  let consoleProc = null;
  const startConsole = async () => {
    consoleProc = run(BIN, ["console", "--listen", `127.0.0.1:${port}`, "--socket", sock], "console");
    await waitFor("the console", () => connects({ host: "127.0.0.1", port }));
  };
  await startConsole();
  // A customer's text, injected at the simulator's control socket: the SMSC
  // delivers it to the daemon as a deliver_sm.
  const inject = (from, text) =>
    socketRequest(control, { op: "inject", from: from.replace(/^\+/, ""), to: SUPPORT_SENDER, text });
  return {
    url: () => `http://127.0.0.1:${port}/`,
    service: "support",
    voiceService: null,
    landline: "+44 20 7946 0000",
    templateName: "callback",
    templateText: "We tried to call you. Reply here or call us back when it suits you.",
    inject,
    startConsole,
    stopConsole: () => stopChild(consoleProc),
    stop: async () => {
      await stopChild(consoleProc);
      await stopChild(daemon);
      await stopChild(sim);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** DEV: a stand-in daemon given by CONSOLE_TEST_FAKE, for work on the page
 *  before the daemon exists; never what CI runs. */
async function startFake() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "smppgw-console-test-"));
  const sock = path.join(dir, "agent.sock");
  const fake = process.env.CONSOLE_TEST_FAKE;
  const consoleBin = process.env.CONSOLE_TEST_CONSOLE_BIN;
  const daemon = run("node", [fake, sock], "daemon");
  await waitFor("the agent socket", () => connects(sock));
  const port = await freePort();
  let consoleProc = null;
  const startConsole = async () => {
    consoleProc = run(consoleBin, [sock, `127.0.0.1:${port}`], "console");
    await waitFor("the console", () => connects({ host: "127.0.0.1", port }));
  };
  await startConsole();
  return {
    url: () => `http://127.0.0.1:${port}/`,
    service: "support",
    voiceService: "voice",
    landline: "+44 20 7946 0000",
    templateName: "Opening hours",
    templateText: "We are open 9:00-18:00, Monday to Friday.",
    inject: (from, text) => socketRequest(sock, { op: "inject", service: "support", from, text }),
    startConsole,
    stopConsole: () => stopChild(consoleProc),
    stop: async () => {
      await stopChild(consoleProc);
      await stopChild(daemon);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
