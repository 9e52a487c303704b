/**
 * Headless Chromium for the browser tests: WebGPU on its software adapter (SwiftShader),
 * a fresh profile, and the DevTools protocol for screenshots. No npm download: the
 * protocol is a WebSocket.
 *
 * @module
 */
import { chromiumBinary } from "./requires.ts";

/** The flags that give headless Chromium a WebGPU adapter on a machine without a GPU. */
export const CHROMIUM_WEBGPU_FLAGS: readonly string[] = [
  "--headless=new",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-unsafe-swiftshader",
  "--use-webgpu-adapter=swiftshader",
  "--no-first-run",
  "--no-default-browser-check",
  "--window-size=1200,1000",
];

/** A running headless Chromium showing one page. */
export class Chromium {
  readonly #child: Deno.ChildProcess;
  readonly #profile: string;
  readonly #devtools: string;
  readonly #log: string[];

  private constructor(child: Deno.ChildProcess, profile: string, devtools: string, log: string[]) {
    this.#child = child;
    this.#profile = profile;
    this.#devtools = devtools;
    this.#log = log;
  }

  /**
   * Starts Chromium on `url` and waits for its DevTools endpoint; `webgpu: false` leaves
   * WebGPU off (a browser without it).
   */
  static async open(url: string, o: { webgpu?: boolean } = {}): Promise<Chromium> {
    const profile = await Deno.makeTempDir({ prefix: "dbot-chromium-" });
    const flags = o.webgpu === false
      ? [
        ...CHROMIUM_WEBGPU_FLAGS.filter((f) => !/webgpu|swiftshader/.test(f)),
        "--disable-features=WebGPU",
      ]
      : CHROMIUM_WEBGPU_FLAGS;
    const child = new Deno.Command(chromiumBinary(), {
      args: [
        ...flags,
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        url,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log: string[] = [];
    const devtools = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`Chromium did not start in 60 s:\n${log.join("")}`)),
        60_000,
      );
      (async () => {
        const dec = new TextDecoder();
        let found = false;
        for await (const chunk of child.stderr) {
          const text = dec.decode(chunk);
          log.push(text);
          const m = log.join("").match(/DevTools listening on (ws:\/\/[^\s]+)/);
          if (m && !found) {
            found = true;
            clearTimeout(timer);
            resolve(m[1]);
          }
        }
        if (!found) {
          clearTimeout(timer);
          reject(new Error(`Chromium exited before DevTools started:\n${log.join("")}`));
        }
      })();
    });
    return new Chromium(child, profile, devtools, log);
  }

  /** Chromium's stderr so far (for failure messages). */
  get log(): string {
    return this.#log.join("").slice(-4000);
  }

  /** Sends one DevTools command to the first page target; returns its result. */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.#session((call) => call(method, params));
  }

  /**
   * Gives the file input `selector` these files or folders (a folder, for a
   * `webkitdirectory` input, as the user picking it), which fires its `change` event.
   */
  setInputFiles(selector: string, paths: string[]): Promise<unknown> {
    return this.#session(async (call) => {
      const r = await call("Runtime.evaluate", {
        expression: `document.querySelector(${JSON.stringify(selector)})`,
      });
      const objectId = (r.result as { objectId?: string }).objectId;
      if (!objectId) throw new Error(`The page has no element ${selector}`);
      return await call("DOM.setFileInputFiles", { files: paths, objectId });
    });
  }

  /** Runs `fn` with one DevTools connection to the first page target (object ids live in it). */
  async #session<T>(
    fn: (
      call: (method: string, params: Record<string, unknown>) => Promise<Record<string, unknown>>,
    ) => Promise<T>,
  ): Promise<T> {
    const http = this.#devtools.replace(/^ws:/, "http:").replace(/\/devtools\/.*$/, "");
    const targets = await (await fetch(`${http}/json/list`)).json() as {
      type: string;
      webSocketDebuggerUrl: string;
    }[];
    const page = targets.find((t) => t.type === "page");
    if (!page) throw new Error("Chromium has no page target");
    const ws = new WebSocket(page.webSocketDebuggerUrl);
    try {
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("cannot connect to Chromium's DevTools"));
      });
      const waiting = new Map<number, (m: Record<string, unknown>) => void>();
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        waiting.get(m.id)?.(m);
      };
      let id = 0;
      const call = (method: string, params: Record<string, unknown>) =>
        new Promise<Record<string, unknown>>((resolve, reject) => {
          const mine = ++id;
          waiting.set(mine, (m) => {
            waiting.delete(mine);
            if (m.error) reject(new Error(`${method}: ${JSON.stringify(m.error)}`));
            else resolve(m.result as Record<string, unknown>);
          });
          ws.send(JSON.stringify({ id: mine, method, params }));
        });
      return await fn(call);
    } finally {
      ws.close();
    }
  }

  /** A PNG of the page as it is now. */
  async screenshot(): Promise<Uint8Array> {
    const r = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
    });
    return Uint8Array.from(atob(r.data as string), (c) => c.charCodeAt(0));
  }

  /** Stops Chromium and removes its profile. */
  async close(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await this.#child.status;
    // Chromium's helper processes may still be writing the profile for a moment
    for (let i = 0; i < 20; i++) {
      try {
        await Deno.remove(this.#profile, { recursive: true });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
}
