// ramnet ui: the little the pages need beyond htmx, with no inline script (a strict CSP holds).
// 1. Radio buttons with data-reveals show their group of fields and hide their siblings'.
// 2. The identity page asks a browser wallet (window.ethereum, EIP-1193) to sign the EIP-712
//    statement the server made; without a wallet the paste-the-signature form is all there is.
(function () {
  "use strict";

  function revealChoices(root) {
    root.querySelectorAll("input[type=radio][data-reveals]").forEach(function (radio) {
      var group = document.getElementById(radio.dataset.reveals);
      if (group) {
        group.hidden = !radio.checked;
      }
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLInputElement && target.type === "radio" && target.dataset.reveals) {
      revealChoices(target.form || document);
    }
  });

  function showWalletError(message) {
    var box = document.getElementById("wallet-error");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  function walletMessage(error) {
    if (error && error.code === 4001) {
      return "The wallet declined to sign: nothing was bound.";
    }
    var text = error && error.message ? error.message : String(error);
    return "The wallet could not sign: " + text;
  }

  async function signWithWallet(button) {
    var wanted = (button.dataset.address || "").toLowerCase();
    var typed = document.getElementById("typed-data");
    var form = document.getElementById("sign-form");
    var field = document.getElementById("signature");
    if (!typed || !form || !field) {
      return;
    }
    var errorBox = document.getElementById("wallet-error");
    if (errorBox) {
      errorBox.hidden = true;
    }
    button.disabled = true;
    try {
      var accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
      var account = (accounts || []).find(function (a) {
        return String(a).toLowerCase() === wanted;
      });
      if (!account) {
        showWalletError(
          "The wallet's account " + ((accounts || [])[0] || "(none)") +
          " is not the payout address " + button.dataset.address +
          ": switch to that account in the wallet and sign again."
        );
        return;
      }
      var signature = await window.ethereum.request({
        method: "eth_signTypedData_v4",
        params: [account, typed.textContent],
      });
      field.value = signature;
      form.requestSubmit();
    } catch (error) {
      showWalletError(walletMessage(error));
    } finally {
      button.disabled = false;
    }
  }

  function setUpWallet(root) {
    var button = root.querySelector ? root.querySelector("#wallet-sign") : null;
    if (!button || button.dataset.ready) {
      return;
    }
    button.dataset.ready = "1";
    if (!window.ethereum || typeof window.ethereum.request !== "function") {
      return;
    }
    button.hidden = false;
    var missing = document.getElementById("wallet-missing");
    if (missing) {
      missing.textContent = "Or sign elsewhere and paste the signature below.";
    }
    button.addEventListener("click", function () {
      signWithWallet(button);
    });
  }

  function setUp(root) {
    revealChoices(root);
    setUpWallet(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUp(document);
  });
  document.addEventListener("htmx:afterSettle", function () {
    setUp(document);
  });
})();
