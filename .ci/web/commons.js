// A commons for the checks: founded by the real `substrate` binary in a temporary directory and
// served on a free loopback port, as crates/substrate/tests/it/util.rs does for the Rust tests.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

/// The binary under test: the first argument of .ci/web/run, passed on in SUBSTRATE_BIN.
export const bin = process.env.SUBSTRATE_BIN ?? "substrate";

/// Runs `substrate ARGS` without the caller's SUBSTRATE_* settings; returns {status, stdout, stderr}.
export function substrate(args, { input } = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SUBSTRATE_")));
  env.RUST_LOG = "warn";
  const out = spawnSync(bin, args, { input, env, encoding: "utf8" });
  if (out.error) throw out.error;
  return out;
}

/// Runs `substrate ARGS`, requires success, returns stdout.
export function ok(args, options) {
  const out = substrate(args, options);
  if (out.status !== 0) {
    throw new Error(`substrate ${args.join(" ")} failed (${out.status}):\n${out.stdout}${out.stderr}`);
  }
  return out.stdout;
}

/// The value after `label` on the line that starts with it, e.g. `log key:`.
export function field(text, label) {
  const line = text.split("\n").map((l) => l.trim()).find((l) => l.startsWith(label));
  if (line === undefined) throw new Error(`no '${label}' line in:\n${text}`);
  return line.slice(label.length).trim();
}

/// A temporary directory, removed by `cleanup`.
export function scratch(name) {
  return mkdtempSync(join(tmpdir(), `substrate-web-${name}-`));
}

/// `substrate id new --key DIR/NAME.json`: the key file's path and its did.
export function person(dir, name) {
  const file = join(dir, `${name}.json`);
  const did = ok(["id", "new", "--key", file]).trim();
  return { file, did, text: () => readFileSync(file, "utf8") };
}

/// Founds a commons in `dir` (stewards by did, a short voting window when given) and serves it.
/// Returns {url, data, vkey, stop}.
export async function commons(dir, { name = "Web Checks", stewards = [], window } = {}) {
  const data = join(dir, "data");
  const args = ["init", "--data-dir", data, "--name", name];
  for (const did of stewards) args.push("--steward", did);
  if (window) args.push("--voting-window", window);
  const vkey = field(ok(args), "log key:");
  const log = openSync(join(dir, "serve.log"), "a");
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SUBSTRATE_")));
  env.RUST_LOG = "info,libp2p=warn";
  const child = spawn(bin, ["serve", "--data-dir", data, "--listen", "127.0.0.1:0"], {
    env,
    stdio: ["ignore", "pipe", log],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  // The first line the node prints is its address; it prints nothing before it is ready.
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise((resolve) => lines.once("line", resolve)),
    exited.then(() => null),
  ]);
  const url = first?.startsWith("listening on http://127.0.0.1:") ? first.slice("listening on ".length).trim() : null;
  if (url === null) {
    child.kill("SIGKILL");
    throw new Error(`the node did not start: ${JSON.stringify(first)}\n${readFileSync(join(dir, "serve.log"), "utf8")}`);
  }
  // Keep reading, so the node never writes into a full pipe.
  lines.on("line", () => {});
  const stop = async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  };
  return { url, data, vkey, stop };
}

/// A JSON request to the node: {status, body}.
export async function api(url, path, { method = "GET", body } = {}) {
  const response = await fetch(url + path, {
    method,
    body,
    headers: body === undefined ? {} : { "content-type": "application/json" },
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status, body: json, text };
}

/// Polls `probe` until it returns a value other than undefined, or fails after `seconds`.
export async function eventually(what, seconds, probe) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds}s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export function cleanup(dir) {
  rmSync(dir, { recursive: true, force: true });
}
