// The simulated agent desktop: sign in with Basic credentials, show and
// change the agent state over the REST API, and receive notifications over
// XMPP over WebSocket (RFC 7395) from wss://<host>/ws/. The host comes from
// the desktop configuration, which names the external host through a proxy.
'use strict';
(function () {
  const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
  const BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
  const FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
  const $ = (id) => document.getElementById(id);
  let config = null;
  let auth = null;
  let userId = null;
  let ws = null;
  let pingTimer = null;
  let unanswered = 0;
  let pingsAnswered = 0;

  const parseXml = (text) => new DOMParser().parseFromString(text, 'application/xml');
  const b64 = (s) => btoa(unescape(encodeURIComponent(s)));
  const esc = (s) => String(s).replace(/[<>&"']/g, (c) => '&#' + c.charCodeAt(0) + ';');

  function note(text) {
    const li = document.createElement('li');
    li.textContent = new Date().toLocaleTimeString() + '  ' + text;
    $('notifications').prepend(li);
  }

  function status(text, connected) {
    $('xmpp-status').textContent = text;
    $('xmpp-status').className = connected ? 'connected' : '';
  }

  async function loadConfig() {
    const r = await fetch('/desktop/api/DesktopConfig', { cache: 'no-store' });
    if (!r.ok) throw new Error('desktop configuration: HTTP ' + r.status);
    config = await r.json();
  }

  function api(method, path, body) {
    const headers = { Authorization: auth };
    if (body) headers['Content-Type'] = 'application/xml';
    return fetch('/finesse/api/' + path, { method, headers, body, cache: 'no-store' });
  }

  async function errorText(r) {
    const text = await r.text();
    const type = parseXml(text).getElementsByTagName('ErrorType')[0];
    return 'HTTP ' + r.status + (type ? ': ' + type.textContent : '');
  }

  async function setState(state, extension) {
    $('action-error').textContent = '';
    let xml = '<User><state>' + esc(state) + '</state>';
    if (extension) xml += '<extension>' + esc(extension) + '</extension>';
    xml += '</User>';
    const r = await api('PUT', 'User/' + encodeURIComponent(userId), xml);
    if (r.status !== 202) $('action-error').textContent = await errorText(r);
  }

  function showSignedOut() {
    $('agent').hidden = true;
    $('signin').hidden = false;
    if (ws) {
      try { ws.send('<close xmlns="' + FRAMING + '"/>'); } catch (e) { /* already closed */ }
      ws.close();
    }
  }

  function onEvent(message) {
    const n = message.getElementsByTagName('notification')[0];
    if (!n) return;
    const update = parseXml(n.textContent);
    const source = (update.getElementsByTagName('source')[0] || {}).textContent || '?';
    const state = (update.getElementsByTagName('state')[0] || {}).textContent;
    note(source + ': state ' + (state || '?'));
    if (source === '/finesse/api/User/' + userId && state) {
      $('state').textContent = state;
      if (state === 'LOGOUT') showSignedOut();
    }
  }

  function connectNotifications(user, password) {
    return new Promise((resolve) => {
      const domain = config.xmppDomain;
            // this connection's own socket: callbacks of an older one never touch it
      const sock = new WebSocket('wss://' + config.host + '/ws/', ['xmpp']);
      const open = () => sock.send('<open xmlns="' + FRAMING + '" to="' + esc(domain) + '" version="1.0"/>');
      ws = sock;
      unanswered = 0;
      status('connecting', false);
      sock.onopen = open;
      sock.onmessage = (ev) => {
        const el = parseXml(ev.data).documentElement;
        switch (el.localName) {
          case 'features':
            if (el.getElementsByTagNameNS(SASL, 'mechanisms').length) {
              sock.send('<auth xmlns="' + SASL + '" mechanism="PLAIN">' + b64('\0' + user + '\0' + password) + '</auth>');
            } else if (el.getElementsByTagNameNS(BIND, 'bind').length) {
              sock.send('<iq xmlns="jabber:client" type="set" id="bind1"><bind xmlns="' + BIND + '"><resource>desktop</resource></bind></iq>');
            }
            break;
          case 'success':
            open();
            break;
          case 'failure':
            status('sign-in refused', false);
            resolve(false);
            break;
          case 'iq':
            if (el.getAttribute('id') === 'bind1' && el.getAttribute('type') === 'result') {
              sock.send('<presence xmlns="jabber:client"><priority>1</priority></presence>');
              status('connected', true);
                            clearInterval(pingTimer);
              pingTimer = setInterval(ping, 10000);
              resolve(true);
            } else if ((el.getAttribute('id') || '').startsWith('ping') && el.getAttribute('type') === 'result') {
              unanswered = 0;
              pingsAnswered += 1;
              $('xmpp-status').title = pingsAnswered + ' pings answered';
            }
            break;
          case 'message':
            onEvent(el);
            break;
                    case 'close':
            sock.close();
            break;
        }
      };
      sock.onclose = () => {
        if (ws === sock) {
          clearInterval(pingTimer);
          status('disconnected', false);
        }
        resolve(false);
      };
    });
  }

  let pingSeq = 0;
  function ping() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (unanswered >= 2) status('no answer to pings', false);
    unanswered += 1;
    pingSeq += 1;
    ws.send('<iq xmlns="jabber:client" type="get" id="ping' + pingSeq + '" to="' + esc(config.xmppDomain) + '"><ping xmlns="urn:xmpp:ping"/></iq>');
  }

  async function signIn(e) {
    e.preventDefault();
    $('signin-error').textContent = '';
    userId = $('user').value.trim();
    const password = $('password').value;
    const extension = $('extension').value.trim();
    let secret = password;
    try {
      if (!config) await loadConfig();
      if (config.systemAuthMode === 'SSO') {
        // SSO: the password buys an access token; REST and XMPP then use the token
        const t = await fetch('/desktop/sso/token', {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: 'username=' + encodeURIComponent(userId) + '&password=' + encodeURIComponent(password),
          cache: 'no-store',
        });
        if (t.status !== 200) {
          const why = (await t.json().catch(() => ({}))).error || '';
          $('signin-error').textContent = 'Sign-in failed (SSO: HTTP ' + t.status + (why ? ': ' + why : '') + ')';
          return;
        }
        secret = (await t.json()).access_token;
        auth = 'Bearer ' + secret;
      } else {
        auth = 'Basic ' + b64(userId + ':' + password);
      }
      const r = await api('GET', 'User/' + encodeURIComponent(userId));
      if (r.status !== 200) {
        $('signin-error').textContent = 'Sign-in failed (' + await errorText(r) + ')';
        return;
      }
      const user = parseXml(await r.text());
      const first = (user.getElementsByTagName('firstName')[0] || {}).textContent || '';
      const last = (user.getElementsByTagName('lastName')[0] || {}).textContent || '';
      $('agent-name').textContent = userId + ' (' + (first + ' ' + last).trim() + ')';
      $('state').textContent = (user.getElementsByTagName('state')[0] || {}).textContent || '-';
      $('signin').hidden = true;
      $('agent').hidden = false;
            // a desktop without notifications would never see its state: no LOGIN
      if (!(await connectNotifications(userId, secret))) {
        showSignedOut();
        $('signin-error').textContent = 'Sign-in failed: the notification service is unavailable';
        return;
      }
      await setState('LOGIN', extension);
    } catch (err) {
      $('signin-error').textContent = 'Sign-in failed: ' + err.message;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('signin-form').addEventListener('submit', signIn);
    for (const b of document.querySelectorAll('#agent button[data-state]')) {
      b.addEventListener('click', () => setState(b.dataset.state));
    }
    loadConfig().catch((err) => { $('signin-error').textContent = err.message; });
  });
})();
