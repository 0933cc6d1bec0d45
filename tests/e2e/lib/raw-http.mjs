// A raw HTTP/1.1 client over a TCP socket, for requests that fetch and node:http would refuse to
// send or would quietly normalise: lower-case or unknown methods, control characters and raw UTF-8
// in header values, duplicate headers, obsolete line folding, absurd request targets. The caller
// writes the request line and headers exactly; this only adds nothing but the bytes it is given.
import net from "node:net";

/**
 * Sends `head` (request line and header lines, without the final blank line) and `body` to
 * host:port, exactly as given (strings are sent as latin1 unless `utf8: true`), and reads the whole
 * answer. Resolves to { status, headers (lower-case names, repeated ones joined with ", "), body
 * (a Buffer), raw } or, if the server closes without an answer or does not answer in time,
 * { status: 0, error }.
 */
export function rawRequest(url, { head, body = "", utf8 = false, timeoutMs = 10_000 }) {
  const { hostname, port } = new URL(url);
  const enc = utf8 ? "utf8" : "latin1";
  const payload = Buffer.concat([
    Buffer.from(`${head}\r\n\r\n`, enc),
    Buffer.isBuffer(body) ? body : Buffer.from(body, enc),
  ]);
  return new Promise((resolve) => {
    const chunks = [];
    let done = false;
    const socket = net.connect({ host: hostname, port: Number(port) });
    const finish = (extra = {}) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parse(Buffer.concat(chunks)), ...extra });
    };
    const timer = setTimeout(() => finish({ timedOut: true }), timeoutMs);
    socket.on("connect", () => socket.write(payload));
    socket.on("data", (c) => {
      chunks.push(c);
      if (complete(Buffer.concat(chunks))) finish();
    });
    socket.on("end", () => finish());
    socket.on("close", () => finish());
    socket.on("error", (err) => finish({ socketError: err.code ?? err.message }));
  });
}

/** Whether a buffer holds a whole response (headers, and a body by length or final chunk). */
function complete(buf) {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const r = parse(buf);
  if (r.chunked) return r.chunkedDone;
  if (r.headers["content-length"] !== undefined) {
    return buf.length - (end + 4) >= Number(r.headers["content-length"]);
  }
  return false; // until the server closes
}

function parse(buf) {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return { status: 0, headers: {}, body: Buffer.alloc(0), raw: buf.toString("latin1") };
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  let body = buf.subarray(end + 4);
  let chunked = false;
  let chunkedDone = false;
  if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
    chunked = true;
    const parts = [];
    let rest = body;
    for (;;) {
      const nl = rest.indexOf("\r\n");
      if (nl < 0) break;
      const size = parseInt(rest.subarray(0, nl).toString("latin1"), 16);
      if (Number.isNaN(size)) break;
      if (size === 0) {
        chunkedDone = true;
        break;
      }
      if (rest.length < nl + 2 + size + 2) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else if (headers["content-length"] !== undefined) {
    body = body.subarray(0, Number(headers["content-length"]));
  }
  return { status: m ? Number(m[1]) : 0, headers, body, chunked, chunkedDone, raw: lines[0] };
}
