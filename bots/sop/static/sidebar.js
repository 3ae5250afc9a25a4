/* 训练营助手 · 聊天工具栏 (staff sidebar). No framework, no CDN: WeCom's JS-SDK (window.ww) is
   served by CampBot itself; the development harness puts a fake ww in its place. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("cfg").textContent);
  var app = document.getElementById("app");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function api(method, path, body) {
    var init = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : "请求失败（" + r.status + "）");
        return data;
      });
    });
  }

  function say(text, cls) {
    app.textContent = "";
    app.appendChild(el("p", { id: "status", "class": cls || "muted", text: text }));
  }

  function ok(result) {
    return !!result && /:ok$/.test(String(result.errMsg || result.err_msg || ""));
  }

  /* One tap = one sendChatMessage per part (text, its image, each link card). */
  function sendParts(item) {
    var parts = [];
    if (item.text) parts.push(function () { return ww.sendChatMessage({ msgtype: "text", text: { content: item.text } }); });
    if (item.has_image) parts.push(function () {
      return api("POST", "/sidebar/api/tasks/" + item.id + "/media").then(function (m) {
        return ww.sendChatMessage({ msgtype: "image", image: { mediaid: m.mediaid } });
      });
    });
    (item.articles || []).forEach(function (a) {
      parts.push(function () {
        return ww.sendChatMessage({ msgtype: "news", news: { link: a.url, title: a.title, desc: a.desc, imgUrl: a.imgUrl } });
      });
    });
    return parts.reduce(function (done, next) {
      return done.then(function (prev) { if (prev && !ok(prev)) return prev; return next(); });
    }, Promise.resolve(null));
  }

  function itemNode(item) {
    var state = el("span", { "class": "item-state muted", text: item.status === "sent" ? "已发送" : "" });
    var send = el("button", { "class": "send", type: "button", text: "发送" });
    var skip = el("button", { "class": "secondary skip", type: "button", text: "跳过" });
    if (item.status === "sent" || item.status === "skipped") { send.disabled = true; skip.disabled = true; }
    send.addEventListener("click", function () {
      send.disabled = true; skip.disabled = true; state.textContent = "发送中…";
      sendParts(item).then(function (result) {
        if (!ok(result)) throw new Error("未发送（" + ((result && result.errMsg) || "已取消") + "）");
        return api("POST", "/sidebar/api/tasks/" + item.id + "/sent");
      }).then(function () {
        state.textContent = "已发送";
      }).catch(function (err) {
        state.textContent = String(err.errMsg || err.message || err);
        send.disabled = false; skip.disabled = false;
      });
    });
    skip.addEventListener("click", function () {
      send.disabled = true; skip.disabled = true;
      api("POST", "/sidebar/api/tasks/" + item.id + "/skip").then(function () { state.textContent = "已跳过"; })
        .catch(function (err) { state.textContent = err.message; skip.disabled = false; send.disabled = false; });
    });
    var when = new Date(item.due_at);
    return el("div", { "class": "sop-item" + (item.overdue ? " overdue" : ""), "data-id": String(item.id) }, [
      el("div", { "class": "title", text: item.title }),
      el("div", { "class": "muted", text: "计划 " + when.toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", timeZone: cfg.timezone || "Asia/Shanghai" }) + (item.has_image ? " · 含图片" : "") }),
      item.text ? el("div", { "class": "text", text: item.text }) : null,
      el("div", { "class": "row" }, [send, skip, state])
    ]);
  }

  function itemsSection(items, empty) {
    var box = el("section", { id: "items" }, [el("h2", { text: "待发送（" + items.length + "）" })]);
    if (!items.length) box.appendChild(el("p", { "class": "muted", text: empty }));
    items.forEach(function (i) { box.appendChild(itemNode(i)); });
    return box;
  }

  function renderGroup(card) {
    app.textContent = "";
    app.appendChild(el("section", { id: "context" }, [
      el("h2", { text: card.name }),
      el("div", { "class": "muted", text: (card.cohort || "") + (card.camp_day != null ? " · 第 " + card.camp_day + " 天" : "") })
    ]));
    app.appendChild(itemsSection(card.items, "现在没有要发的群SOP。"));
    var c = card.checkins;
    app.appendChild(el("section", { id: "checkins" }, [
      el("h2", { text: "今日打卡" }),
      el("div", {}, [el("span", { "class": "stat" }, [el("b", { id: "checked-in", text: String(c.checked_in) }), el("span", { text: " / " + c.members + " 人" })])]),
      el("div", { "class": "muted", id: "missing", text: !c.members ? "群里还没有学员记录。" : c.missing.length ? "还没打卡（可在群里 @ 提醒）：" + c.missing.join("、") : "都打卡了 🎉" })
    ]));
    var table = el("table", {}, card.timetable.map(function (s) {
      return el("tr", {}, [el("td", { text: s.time }), el("td", { text: s.title }), el("td", { text: s.how }), el("td", { text: s.state })]);
    }));
    app.appendChild(el("section", { id: "timetable" }, [el("h2", { text: "今天的安排" }), card.timetable.length ? table : el("p", { "class": "muted", text: "今天没有安排。" })]));
    app.appendChild(searchSection(card.chat_id));
  }

  function searchSection(chatId) {
    var input = el("input", { type: "search", placeholder: "搜索话术库", maxlength: "50" });
    var list = el("div", {});
    var box = el("section", { id: "scripts" }, [el("h2", { text: "话术库" }), input, list]);
    input.addEventListener("change", function () {
      api("GET", "/sidebar/api/groups/" + encodeURIComponent(chatId) + "/scripts?q=" + encodeURIComponent(input.value)).then(function (found) {
        list.textContent = "";
        found.items.forEach(function (s) {
          var b = el("button", { "class": "secondary", type: "button", text: s.title });
          b.addEventListener("click", function () {
            api("GET", "/sidebar/api/groups/" + encodeURIComponent(chatId) + "/scripts/" + s.key).then(function (r) {
              return ww.sendChatMessage({ msgtype: "text", text: { content: r.message.content || "" } });
            }).catch(function (err) { b.textContent = err.message; });
          });
          list.appendChild(b);
        });
      });
    });
    return box;
  }

  function renderStudent(card) {
    app.textContent = "";
    app.appendChild(el("section", { id: "context" }, [
      el("h2", { text: card.name }),
      el("div", { "class": "muted", text: (card.cohort || "未入营") + (card.camp_day != null ? " · 第 " + card.camp_day + " 天" : "") }),
      el("div", {}, [
        el("span", { "class": "stat" }, [el("span", { text: "连续打卡 " }), el("b", { id: "streak", text: String(card.streak) }), el("span", { text: " 天" })]),
        el("span", { "class": "stat" }, [el("span", { text: "积分 " }), el("b", { id: "points", text: String(card.points) })]),
        el("span", { "class": "stat" }, [el("span", { text: "排名 " }), el("b", { id: "rank", text: card.rank ? card.rank + "/" + card.cohort_size : "-" })])
      ]),
      el("div", {}, card.tags.map(function (t) { return el("span", { "class": "tag", text: t }); }))
    ]));
    app.appendChild(itemsSection(card.items, "这位学员没有待发的内容。"));
    var actions = el("section", { id: "actions" }, [el("h2", { text: "发给 ta" })]);
    var link = el("button", { type: "button", text: "发送学习页链接" });
    link.addEventListener("click", function () {
      ww.sendChatMessage({ msgtype: "news", news: { link: card.h5_url, title: card.name + "的专属学习页", desc: "打卡、交作业、看积分和排名", imgUrl: "" } });
    });
    actions.appendChild(link);
    if (card.reminder) {
      var remind = el("button", { "class": "secondary", type: "button", text: "发送打卡提醒" });
      remind.addEventListener("click", function () { ww.sendChatMessage({ msgtype: "text", text: { content: card.reminder } }); });
      actions.appendChild(remind);
    }
    app.appendChild(actions);
    var work = el("section", { id: "recent" }, [el("h2", { text: "最近的打卡与作业" })]);
    card.recent.forEach(function (w, n) {
      var node = el("div", { "class": "sop-item" + (w.kind === "homework" && n === card.recent.findIndex(function (x) { return x.kind === "homework"; }) ? " latest-homework" : "") }, [
        el("div", { "class": "title", text: "第 " + w.day + " 天 · " + (w.kind === "homework" ? "作业" : "打卡") + (w.reviewed ? " · 已点评 " + w.score + " 分" : (w.kind === "homework" ? " · 待点评" : "")) }),
        el("div", { "class": "text", text: w.text || "（只有图片）" }),
        el("div", { "class": "thumbs" }, w.images.map(function (src) { return el("img", { src: src, alt: "作业图片" }); }))
      ]);
      if (w.kind === "homework" && !w.reviewed) node.appendChild(reviewForm(card, w));
      work.appendChild(node);
    });
    if (!card.recent.length) work.appendChild(el("p", { "class": "muted", text: "还没有提交。" }));
    app.appendChild(work);
  }

  function reviewForm(card, w) {
    var score = el("input", { type: "number", min: "0", max: "100", placeholder: "分数" });
    var comment = el("input", { type: "text", maxlength: "500", placeholder: "点评" });
    var go = el("button", { type: "button", text: "点评" });
    var note = el("span", { "class": "muted" });
    go.addEventListener("click", function () {
      api("POST", "/sidebar/api/students/" + encodeURIComponent(card.external_userid) + "/review",
        { entry_id: w.id, score: Number(score.value), comment: comment.value || null })
        .then(function () { note.textContent = "已点评"; go.disabled = true; })
        .catch(function (err) { note.textContent = err.message; });
    });
    return el("div", { "class": "row" }, [score, comment, go, note]);
  }

  function renderMine(result) {
    app.textContent = "";
    app.appendChild(el("section", { id: "context" }, [el("h2", { text: "我的群SOP" }), el("div", { "class": "muted", text: "在客户群或学员私聊里打开本页，可以一键发送。" })]));
    app.appendChild(itemsSection(result.items, "现在没有要发的内容。"));
  }

  function sign(path) {
    return function (url) { return api("POST", path, { url: url }); };
  }

  ww.register({
    corpId: cfg.corpId,
    agentId: cfg.agentId,
    jsApiList: ["getContext", "getCurExternalChat", "getCurExternalContact", "sendChatMessage"],
    getConfigSignature: sign("/sidebar/api/jsapi/config"),
    getAgentConfigSignature: sign("/sidebar/api/jsapi/agent")
  });

  ww.getContext().then(function (ctx) {
    if (ctx.entry === "group_chat_tools") {
      return ww.getCurExternalChat().then(function (r) {
        return api("GET", "/sidebar/api/groups/" + encodeURIComponent(r.chatId)).then(renderGroup);
      });
    }
    if (ctx.entry === "single_chat_tools" || ctx.entry === "contact_profile") {
      return ww.getCurExternalContact().then(function (r) {
        return api("GET", "/sidebar/api/students/" + encodeURIComponent(r.userId)).then(renderStudent);
      });
    }
    return api("GET", "/sidebar/api/tasks").then(renderMine);
  }).catch(function (err) {
    say(String((err && (err.errMsg || err.message)) || err), "error");
  });
})();
