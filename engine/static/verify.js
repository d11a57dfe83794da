// Re-checks, in the petitioner's own browser, that the document is in the signed log:
// the leaf hash of its log entry (RFC 9162: SHA-256(0x00 || entry)), folded along the inclusion
// proof, must give the root of the signed tree head; the head's Ed25519 signature is checked with
// the Web Crypto API where the browser offers it. SHA-256 is computed here (no Web Crypto needed:
// an intranet page served over plain http has no crypto.subtle). Served locally; no dependencies.
(function () {
  "use strict";

  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);

  function sha256(bytes) {
    var h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    var bitLen = bytes.length * 8;
    var padded = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6);
    padded.set(bytes);
    padded[bytes.length] = 0x80;
    var view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
    view.setUint32(padded.length - 4, bitLen >>> 0);
    var w = new Uint32Array(64);
    for (var off = 0; off < padded.length; off += 64) {
      for (var i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
      for (i = 16; i < 64; i++) {
        var a = w[i - 15], b = w[i - 2];
        var s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        var s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      var A = h[0], B = h[1], C = h[2], D = h[3], E = h[4], F = h[5], G = h[6], H = h[7];
      for (i = 0; i < 64; i++) {
        var S1 = ((E >>> 6) | (E << 26)) ^ ((E >>> 11) | (E << 21)) ^ ((E >>> 25) | (E << 7));
        var ch = (E & F) ^ (~E & G);
        var t1 = (H + S1 + ch + K[i] + w[i]) >>> 0;
        var S0 = ((A >>> 2) | (A << 30)) ^ ((A >>> 13) | (A << 19)) ^ ((A >>> 22) | (A << 10));
        var maj = (A & B) ^ (A & C) ^ (B & C);
        var t2 = (S0 + maj) >>> 0;
        H = G; G = F; F = E; E = (D + t1) >>> 0; D = C; C = B; B = A; A = (t1 + t2) >>> 0;
      }
      h[0] = (h[0] + A) >>> 0; h[1] = (h[1] + B) >>> 0; h[2] = (h[2] + C) >>> 0; h[3] = (h[3] + D) >>> 0;
      h[4] = (h[4] + E) >>> 0; h[5] = (h[5] + F) >>> 0; h[6] = (h[6] + G) >>> 0; h[7] = (h[7] + H) >>> 0;
    }
    var out = new Uint8Array(32);
    var ov = new DataView(out.buffer);
    for (i = 0; i < 8; i++) ov.setUint32(i * 4, h[i]);
    return out;
  }

  function concat() {
    var n = 0, i;
    for (i = 0; i < arguments.length; i++) n += arguments[i].length;
    var out = new Uint8Array(n), at = 0;
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], at); at += arguments[i].length; }
    return out;
  }
  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function unhex(s) {
    var out = new Uint8Array(s.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  }
  function unb64(s) {
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  var leafHash = function (entry) { return sha256(concat(new Uint8Array([0]), entry)); };
  var nodeHash = function (l, r) { return sha256(concat(new Uint8Array([1]), l, r)); };

  // RFC 9162 section 2.1.3.2: verifying an inclusion proof.
  function rootFromProof(leaf, index, size, proof) {
    if (index >= size) return null;
    var fn = index, sn = size - 1, r = leaf;
    for (var i = 0; i < proof.length; i++) {
      if (sn === 0) return null;
      if ((fn & 1) || fn === sn) {
        r = nodeHash(proof[i], r);
        if (!(fn & 1)) { while (fn !== 0 && !(fn & 1)) { fn >>>= 1; sn >>>= 1; } }
      } else {
        r = nodeHash(r, proof[i]);
      }
      fn >>>= 1; sn >>>= 1;
    }
    return sn === 0 ? r : null;
  }

  // The bytes a signed tree head signs (activities/ledger/heads.py sth_signing_input).
  function signingInput(sth) {
    var ctx = new TextEncoder().encode("petition-ledger-sth-v1");
    var size = new Uint8Array(8), sv = new DataView(size.buffer);
    sv.setUint32(0, Math.floor(sth.tree_size / 0x100000000));
    sv.setUint32(4, sth.tree_size >>> 0);
    var ts = new TextEncoder().encode(sth.timestamp);
    var len = new Uint8Array([ts.length >> 8, ts.length & 255]);
    return concat(ctx, new Uint8Array([0]), size, unhex(sth.root_hex), len, ts);
  }

  function say(el, text, state) { el.textContent = text; el.className = state; el.setAttribute("data-state", state); }

  var data = JSON.parse(document.getElementById("proof-data").textContent);
  var status = document.getElementById("proof-status");
  var sigStatus = document.getElementById("sig-status");
  var entry = unb64(data.entry_b64);
  var record = JSON.parse(new TextDecoder().decode(entry));
  var root = rootFromProof(leafHash(entry), data.index, data.tree_size, data.proof_hex.map(unhex));
  var proofOk = root !== null && hex(root) === data.root_hex && data.sth.root_hex === data.root_hex &&
    record.document_sha256 === data.document_sha256;
  if (proofOk) {
    say(status, "已在本机核对：这份文书（摘要 " + data.document_sha256.slice(0, 16) + "…）是存证日志第 " +
        data.index + " 条，包含证明与签名树根一致。", "genuine");
  } else {
    say(status, "核对失败：包含证明与签名树根不一致。请不要相信这份文书，并向出具单位核实。", "alert");
  }

  var subtle = window.crypto && window.crypto.subtle;
  if (!subtle) {
    sigStatus.textContent = "本浏览器在此连接下不提供签名核验（需要 https）；树根的签名可用 starter.py ledger monitor 核对。";
    return;
  }
  subtle.importKey("raw", unb64(data.sth.public_key_b64), { name: "Ed25519" }, false, ["verify"])
    .then(function (key) {
      return subtle.verify({ name: "Ed25519" }, key, unb64(data.sth.signature_b64), signingInput(data.sth));
    })
    .then(function (ok) {
      sigStatus.textContent = ok ? "签名树根的 Ed25519 签名已在本机核对无误（公钥见技术细节，可与出具机关公布的公钥比对）。"
                                 : "签名树根的签名不正确！请向出具单位核实。";
      sigStatus.className = ok ? "genuine" : "alert";
      sigStatus.setAttribute("data-state", ok ? "genuine" : "alert");
    })
    .catch(function () {
      sigStatus.textContent = "本浏览器不支持 Ed25519 签名核验；树根的签名可用 starter.py ledger monitor 核对。";
    });
})();
