// ringside status page: refreshes the live section, answers the route box, runs the buttons.
// Everything taken from the API is put into the page as text (textContent), never as markup;
// the live section comes as HTML the server rendered (and escaped) with html/template. URLs are
// relative to the page, so it also works behind a proxy that serves the admin server under a path.
(function () {
  'use strict';
  var TOKEN_KEY = 'ringside.admin_token';
  var $ = function (id) { return document.getElementById(id); };
  var live = $('live'), conn = $('conn'), updated = $('updated');
  var refreshMS = Number(document.body.dataset.refreshMs) || 3000;
  var memToken = '';      // the token for this page's life; sessionStorage only if asked
  var lastRoute = null;   // {upstream, key} of the route box's last answer, re-asked on refresh
  var pending = null;     // {upstream, endpoint, action} the dialog confirms

  function token() {
    var t = memToken;
    try { t = t || sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { /* storage off */ }
    return t;
  }
  function forgetToken() {
    memToken = '';
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage off */ }
    $('forget').hidden = true;
  }
  $('forget').hidden = !token();
  $('forget').addEventListener('click', forgetToken);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = String(text); }
    return e;
  }
  function pill(state) { return el('span', 'pill s-' + String(state).replace(/[^a-z_]/g, ''), state); }

  // morph makes the children of a equal to those of b, touching only what differs, so the
  // refresh neither flickers nor moves the focus off a button that did not change.
  function morph(a, b) {
    var an = a.childNodes, bn = b.childNodes;
    if (an.length !== bn.length) { a.replaceChildren.apply(a, Array.prototype.slice.call(bn)); return; }
    for (var i = bn.length - 1; i >= 0; i--) {
      var x = an[i], y = bn[i];
      if (x.isEqualNode(y)) { continue; }
      if (x.nodeType !== y.nodeType || x.nodeName !== y.nodeName || x.nodeType !== 1) {
        if (x.nodeType === 3 && y.nodeType === 3) { x.nodeValue = y.nodeValue; } else { a.replaceChild(y, x); }
        continue;
      }
      var names = {};
      Array.prototype.forEach.call(y.attributes, function (at) { names[at.name] = true; x.setAttribute(at.name, at.value); });
      Array.prototype.slice.call(x.attributes).forEach(function (at) { if (!names[at.name]) { x.removeAttribute(at.name); } });
      morph(x, y);
    }
  }

  function setConn(ok, text) {
    conn.className = ok ? 'conn ok' : 'conn down';
    conn.textContent = text;
  }

  function refresh() {
    return fetch('?part=live', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) { throw new Error('status ' + r.status); }
      return r.text();
    }).then(function (html) {
      var t = document.createElement('template');
      t.innerHTML = html;
      morph(live, t.content);
      setConn(true, 'live');
      updated.textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
      if (lastRoute) { return route(lastRoute.upstream, lastRoute.key); }
    }).catch(function (e) {
      setConn(false, 'no answer: ' + e.message);
    });
  }

  function later() { setTimeout(function () { refresh().then(later); }, refreshMS); }
  later();

  // The route box: GET /v1/route, shown as the walk the request path makes.
  function route(upstream, key) {
    var q = 'v1/route?upstream=' + encodeURIComponent(upstream) + '&key=' + encodeURIComponent(key);
    return fetch(q, { cache: 'no-store' }).then(function (r) {
      return r.json().then(function (v) { return { ok: r.ok, v: v }; });
    }).then(function (a) {
      var out = $('route-result');
      if (!a.ok) {
        out.replaceChildren(el('p', 'error', a.v.error + (a.v.allowed ? ' (' + a.v.allowed + ')' : '')));
        return;
      }
      lastRoute = { upstream: upstream, key: key };
      out.replaceChildren(showRoute(a.v));
    }).catch(function (e) {
      $('route-result').replaceChildren(el('p', 'error', 'route: ' + e.message));
    });
  }

  function showRoute(v) {
    var box = el('div', 'route-out');
    var head = el('p', 'muted');
    head.append('key ', el('code', '', v.key.value), ' (' + v.key.source + ')');
    if (v.hash) { head.append(' · hash ', el('code', '', v.hash)); }
    if (v.home) { head.append(' · home ', el('b', '', v.home)); }
    if (v.panic) { head.append(' · ', pill('panic')); }
    box.append(head);
    box.append(walk(v.walk || []));
    var tp = el('p', 'target');
    if (v.target) {
      var t = el('b', '', v.target.id);
      t.id = 'route-target';
      tp.append('lands on ', t, ' ', el('span', 'addr', v.target.address), ' ', pill(v.target.state));
    } else {
      tp.append(el('span', 'error', 'lands nowhere: ' + v.error));
    }
    box.append(tp);
    if (v.target) {
      var fp = el('p', 'muted small');
      fp.id = 'route-fallback';
      if (v.fallback) {
        fp.append('if ' + v.target.id + ' is drained or ejected (and where a retry goes): ', el('b', '', v.fallback.id));
      } else {
        fp.append('if ' + v.target.id + ' is drained or ejected: nowhere (' + v.fallback_error + ')');
      }
      if (v.fallback_panics) { fp.append(' — that would put the upstream in panic mode'); }
      box.append(fp);
    }
    return box;
  }

  function walk(steps) {
    var ol = el('ol', 'walk');
    steps.forEach(function (s) {
      var li = el('li', s.taken ? 'take' : 'skip');
      li.append(el('span', 'id', s.endpoint), ' ', pill(s.state), ' ',
        s.taken ? (s.reason ? 'taken as a ' + s.reason.replace('_', ' ') : 'taken') : 'passed over: ' + s.reason);
      ol.append(li);
    });
    return ol;
  }

  $('route-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    route($('route-upstream').value, $('route-key').value);
  });

  // The buttons: a dialog confirms and asks for the token, then POST with it as a bearer header.
  var what = {
    drain: 'No new requests go to it, whatever its health; requests in flight finish.',
    undrain: 'Back in service at once.',
    eject: 'Ejected as outlier detection would eject it, until the time is up.',
    return: 'Ends its ejection now, whoever made it.'
  };
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest ? ev.target.closest('button[data-action]') : null;
    if (!b || b.disabled) { return; }
    var row = b.closest('tr[data-endpoint]'), sec = b.closest('section[data-upstream]');
    pending = { upstream: sec.dataset.upstream, endpoint: row.dataset.endpoint, action: b.dataset.action };
    $('confirm-title').textContent = pending.action.charAt(0).toUpperCase() + pending.action.slice(1) + ' ' +
      pending.endpoint + ' of ' + pending.upstream + '?';
    $('confirm-what').textContent = what[pending.action] || '';
    $('confirm-for-row').hidden = pending.action !== 'eject';
    $('confirm-token').value = token();
    var stored = false;
    try { stored = !!sessionStorage.getItem(TOKEN_KEY); } catch (e) { /* storage off */ }
    $('confirm-remember').checked = stored;
    $('confirm-error').textContent = '';
    $('confirm-ok').textContent = pending.action;
    $('confirm').showModal();
    (token() ? $('confirm-ok') : $('confirm-token')).focus();
  });
  $('confirm-cancel').addEventListener('click', function () { $('confirm').close(); });

  $('confirm-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!pending) { return; }
    var tok = $('confirm-token').value.trim();
    if (!tok) { $('confirm-error').textContent = 'the admin token is needed (the one in admin.token_file)'; return; }
    var p = pending;
    var url = 'v1/upstreams/' + encodeURIComponent(p.upstream) + '/endpoints/' + encodeURIComponent(p.endpoint) +
      '/' + p.action;
    if (p.action === 'eject') { url += '?for=' + encodeURIComponent($('confirm-for').value.trim()); }
    $('confirm-ok').disabled = true;
    fetch(url, { method: 'POST', headers: { Authorization: 'Bearer ' + tok }, cache: 'no-store' }).then(function (r) {
      return r.json().then(function (v) { return { status: r.status, v: v }; });
    }).then(function (a) {
      if (a.status === 401) {
        forgetToken();
        $('confirm-error').textContent = 'the token was refused: ' + a.v.error;
        return;
      }
      if (a.status !== 200) {
        $('confirm-error').textContent = a.v.error + (a.v.allowed ? ' — ' + a.v.allowed : '');
        return;
      }
      memToken = tok;
      try {
        if ($('confirm-remember').checked) { sessionStorage.setItem(TOKEN_KEY, tok); } else { sessionStorage.removeItem(TOKEN_KEY); }
      } catch (e) { /* storage off: memory only */ }
      $('forget').hidden = false;
      pending = null;
      $('confirm').close();
      return refresh();
    }).catch(function (e) {
      $('confirm-error').textContent = p.action + ': ' + e.message;
    }).then(function () { $('confirm-ok').disabled = false; });
  });
})();
