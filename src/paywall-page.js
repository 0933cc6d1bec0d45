// The paywall page's script, as written: src/page.rs sends it minified (src/paywall-page.min.js,
// which `scripts/build` writes from this file with esbuild; run it after changing this one, and
// commit both). It pays the terms embedded in the page with the browser's wallet: see the
// documentation of src/page.rs.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var button = $("x402-pay"), status = $("x402-status"), out = $("x402-content");
  function say(text, error) { status.className = error ? "err" : ""; status.textContent = text; }
  function fromB64(s) {
    var bin = atob(s), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder().decode(bytes);
  }
  function toB64(s) {
    var bytes = new TextEncoder().encode(s), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin);
  }
  var terms;
  try { terms = JSON.parse(fromB64($("x402-terms").getAttribute("data-terms"))); }
  catch (e) { say("The payment terms on this page could not be read. Reload the page.", true); return; }
  button.hidden = false;

  function chosen() {
    var radio = document.querySelector('input[name="offer"]:checked');
    var i = radio ? Number(radio.value) : 0;
    var label = document.querySelector('[data-offer="' + i + '"]');
    return { offer: terms.accepts[i], price: label ? label.textContent : "",
             network: label ? label.getAttribute("data-network") : "" };
  }
  function reason(e) { return (e && (e.message || e.reason)) || String(e); }
  function declined(e) { return e && (e.code === 4001 || e.code === "ACTION_REJECTED"); }

  async function pay() {
    var eth = window.ethereum;
    if (!eth || typeof eth.request !== "function") {
      say("No wallet found in this browser. Install a browser wallet that holds USDC " +
          "(MetaMask, Coinbase Wallet, Rabby or another), then reload this page.", true);
      return;
    }
    var pick = chosen(), offer = pick.offer;
    var m = offer && /^eip155:(\d+)$/.exec(offer.network);
    if (!m || !offer.extra || !offer.extra.name || !offer.extra.version) {
      say("This page asks for a kind of payment this page cannot make. Use an x402 client.", true);
      return;
    }
    var chainId = Number(m[1]), note = "";
    button.disabled = true;
    try {
      say("Asking your wallet for an account\u2026");
      var accounts;
      try { accounts = await eth.request({ method: "eth_requestAccounts" }); }
      catch (e) {
        throw declined(e) ? "You declined to connect your wallet. Nothing was paid."
                          : "Your wallet did not share an account: " + reason(e);
      }
      var from = accounts && accounts[0];
      if (!from) throw "Your wallet shared no account. Unlock it and try again.";
      var current = null;
      try { current = parseInt(await eth.request({ method: "eth_chainId" }), 16); } catch (e) {}
      if (current !== chainId) {
        say("Asking your wallet to switch to " + pick.network + "\u2026");
        try {
          await eth.request({ method: "wallet_switchEthereumChain",
                              params: [{ chainId: "0x" + chainId.toString(16) }] });
        } catch (e) {
          if (declined(e)) throw "You declined to switch to " + pick.network + ". Nothing was paid.";
          if (e && e.code === 4902) {
            throw "Your wallet does not know " + pick.network + " (chain id " + chainId +
                  "). Add that network to your wallet, then try again.";
          }
          note = "Your wallet could not switch to " + pick.network + " (" + reason(e) + "). ";
        }
      }
      var now = Math.floor(Date.now() / 1000), bytes = new Uint8Array(32), nonce = "0x";
      crypto.getRandomValues(bytes);
      for (var i = 0; i < 32; i++) nonce += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
      var authorization = {
        from: from, to: offer.payTo, value: String(offer.amount),
        validAfter: String(now - 600), validBefore: String(now + Number(offer.maxTimeoutSeconds)),
        nonce: nonce
      };
      var typedData = {
        types: {
          EIP712Domain: [
            { name: "name", type: "string" }, { name: "version", type: "string" },
            { name: "chainId", type: "uint256" }, { name: "verifyingContract", type: "address" }
          ],
          TransferWithAuthorization: [
            { name: "from", type: "address" }, { name: "to", type: "address" },
            { name: "value", type: "uint256" }, { name: "validAfter", type: "uint256" },
            { name: "validBefore", type: "uint256" }, { name: "nonce", type: "bytes32" }
          ]
        },
        primaryType: "TransferWithAuthorization",
        domain: { name: offer.extra.name, version: offer.extra.version, chainId: chainId,
                  verifyingContract: offer.asset },
        message: authorization
      };
      say(note + "Confirm the payment of " + pick.price + " in your wallet\u2026");
      var signature;
      try {
        signature = await eth.request({ method: "eth_signTypedData_v4",
                                        params: [from, JSON.stringify(typedData)] });
      } catch (e) {
        throw declined(e) ? "You declined the payment. Nothing was paid."
                          : note + "Your wallet could not sign the payment: " + reason(e);
      }
      var payment = { x402Version: 2, resource: terms.resource, accepted: offer,
                      payload: { signature: signature, authorization: authorization } };
      say("Paying\u2026");
      var res = await fetch(location.href.split("#")[0], {
        method: "GET", credentials: "same-origin", cache: "no-store",
        headers: { "PAYMENT-SIGNATURE": toB64(JSON.stringify(payment)) }
      });
      if (res.ok) {
        var type = res.headers.get("Content-Type") || "";
        if (/^\s*text\/html/i.test(type)) {
          var html = await res.text();
          document.open();
          document.write(html);
          document.close();
          return;
        }
        var link = document.createElement("a");
        link.href = URL.createObjectURL(await res.blob());
        var name = location.pathname.split("/").pop() || "content";
        try { name = decodeURIComponent(name); } catch (e) {}
        link.download = name;
        link.textContent = "Open what you paid for";
        out.replaceChildren(link);
        out.hidden = false;
        say("Paid. Your content is ready below.");
        link.focus();
        return;
      }
      var why = "";
      try { var body = await res.json(); why = body.message || body.error || ""; } catch (e) {}
      var fresh = res.headers.get("PAYMENT-REQUIRED");
      if (fresh) { try { terms = JSON.parse(fromB64(fresh)); } catch (e) {} }
      throw (res.status === 402 ? "The payment was refused" : "The server answered " + res.status) +
            (why ? ": " + why : ".");
    } catch (e) {
      say(typeof e === "string" ? e : "The payment failed: " + reason(e), true);
    } finally {
      button.disabled = false;
    }
  }
  button.addEventListener("click", function () { pay(); });
})();
