/* Development harness: a fake window.ww (the @wecom/jssdk API the sidebar uses) that plays a
   given context and records every sendChatMessage call in window.__sentChatMessages.
   Served only on CampBot's built-in sandbox or to tests (404 with real WeCom settings). */
(function () {
  "use strict";
  var ctx = JSON.parse(document.getElementById("harness").textContent);
  var sent = [];
  window.__sentChatMessages = sent;
  window.__registered = null;
  function answer(api, extra) {
    var result = ctx.result || "ok";
    var body = Object.assign({ errMsg: api + ":" + result, errCode: result === "ok" ? 0 : -1 }, extra || {});
    return result === "ok" ? Promise.resolve(body) : Promise.reject(body);
  }
  window.ww = {
    SDK_VERSION: "harness",
    register: function (options) {
      window.__registered = options;
      // Ask for both signatures as the real SDK does, so the server side is exercised too.
      var url = location.href.split("#")[0];
      window.__signatures = Promise.all([
        options.getConfigSignature(url), options.getAgentConfigSignature(url)
      ]);
    },
    getContext: function () { return answer("getContext", { entry: ctx.entry }); },
    getCurExternalChat: function () {
      return ctx.entry === "group_chat_tools" ? answer("getCurExternalChat", { chatId: ctx.chat_id })
        : Promise.reject({ errMsg: "getCurExternalChat:fail without context of external contact" });
    },
    getCurExternalContact: function () {
      return ctx.entry === "single_chat_tools" ? answer("getCurExternalContact", { userId: ctx.external_userid })
        : Promise.reject({ errMsg: "getCurExternalContact:fail without context of external contact" });
    },
    sendChatMessage: function (message) {
      if (ctx.entry !== "group_chat_tools" && ctx.entry !== "single_chat_tools") {
        return Promise.reject({ errMsg: "sendChatMessage:fail without context of external contact" });
      }
      if ((ctx.result || "ok") === "ok") sent.push(JSON.parse(JSON.stringify(message)));
      return answer("sendChatMessage");
    }
  };
})();
