//! The two pages people use: the holder's wallet (`/wallet`) and the officer's check (`/check`).
//! Server-delivered HTML with a little JavaScript that calls the same API as everyone else; no
//! build step. Both work on a phone-sized screen.

use axum::response::Html;

const STYLE: &str = r#"
:root { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", system-ui, sans-serif; }
body { margin: 0; background: #f3f4f6; color: #111; }
header { background: #b91c1c; color: #fff; padding: 12px 16px; font-size: 18px; }
header small { display: block; font-size: 12px; opacity: .85; }
main { max-width: 480px; margin: 0 auto; padding: 12px; }
.card { background: #fff; border-radius: 12px; padding: 14px; margin: 12px 0; box-shadow: 0 1px 4px #0002; border-top: 6px solid #b91c1c; }
.card h2 { margin: 0 0 6px; font-size: 20px; }
.muted { color: #555; font-size: 13px; }
button { background: #b91c1c; color: #fff; border: 0; border-radius: 8px; padding: 10px 16px; font-size: 16px; }
input, textarea { font-size: 16px; padding: 8px; width: 100%; box-sizing: border-box; }
fieldset { border: 1px solid #ddd; border-radius: 8px; margin: 8px 0; }
label.f { display: inline-block; margin: 4px 10px 4px 0; }
#qr svg { width: 100%; height: auto; background: #fff; }
#verdict { border-radius: 12px; padding: 18px; color: #fff; font-size: 26px; font-weight: bold; text-align: center; }
.v-valid { background: #15803d; } .v-suspended { background: #c2410c; } .v-revoked, .v-forged { background: #b91c1c; }
.v-not_in_force, .v-code_expired, .v-unknown_issuer, .v-malformed { background: #4b5563; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; } dt { color: #555; } dd { margin: 0; overflow-wrap: anywhere; }
.warn { color: #92400e; font-size: 13px; }
.error { color: #b91c1c; }
"#;

/// The holder's wallet.
pub async fn wallet() -> Html<String> {
    Html(format!(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>电子证照 · 我的证照</title>
<style>{STYLE}</style></head><body>
<header>电子证照 · 我的证照<small>e-licence wallet</small></header>
<main>
<section id="signin" class="card">
  <label>证件号码 Holder code <input id="holder" autocomplete="off"></label>
  <p><button id="login">登录 Sign in</button></p>
  <p class="warn">开发用登录：任何证件号码均可登录，生产环境不启用。Development sign-in: any holder code is accepted; never enabled in production.</p>
  <p id="err" class="error"></p>
</section>
<section id="cards"></section>
<section id="show" class="card" hidden>
  <h2>亮证码 Show code</h2>
  <div id="qr"></div>
  <p class="muted">有效至 valid until <span id="expires"></span> · 将自动刷新 refreshes itself</p>
  <details><summary class="muted">文本 text</summary><code id="code" style="word-break: break-all"></code></details>
</section>
</main>
<script>
let token = null, timer = null;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, c => ({{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}})[c]);
const STATUS = {{valid: '有效', suspended: '暂扣', withdrawn: '撤销', cancelled: '注销', expired: '失效', revoked: '吊销'}};
async function api(method, path, body) {{
  const r = await fetch(path, {{method, headers: {{'content-type': 'application/json', ...(token ? {{authorization: 'Bearer ' + token}} : {{}})}}, body: body ? JSON.stringify(body) : undefined}});
  const j = await r.json();
  if (!r.ok) throw new Error(j.code + ': ' + j.message);
  return j;
}}
$('login').onclick = async () => {{
  try {{
    const s = await api('POST', '/v1/holder/sessions', {{holder_code: $('holder').value.trim()}});
    token = s.token;
    render(await api('GET', '/v1/holder/licenses'));
    $('signin').hidden = true;
  }} catch (e) {{ $('err').textContent = e.message; }}
}};
function render(list) {{
  $('cards').innerHTML = '';
  for (const l of list) {{
    const card = document.createElement('article');
    card.className = 'card';
    card.dataset.id = l.id;
    const must = l.disclose_minimum, may = l.disclose_optional;
    card.innerHTML = `<h2>${{esc(l.type_name)}}</h2>
      <p><b>${{esc(l.holder.name)}}</b></p>
      <p class="muted">证照编号 ${{esc(l.number)}}<br>有效期限 ${{esc(l.valid_from)}} 至 ${{esc(l.valid_to || '长期')}}<br>状态 ${{esc(STATUS[l.status] || l.status)}}</p>
      <dl>${{Object.entries(l.fields).map(([k, v]) => `<dt>${{esc(k)}}</dt><dd>${{esc(v)}}</dd>`).join('')}}</dl>
      <fieldset><legend>出示哪些信息 Fields to disclose</legend>
      ${{must.map(f => `<label class="f"><input type="checkbox" checked disabled value="${{esc(f)}}"> ${{esc(f)}}</label>`).join('')}}
      ${{may.map(f => `<label class="f"><input type="checkbox" name="f" value="${{esc(f)}}"> ${{esc(f)}}</label>`).join('')}}</fieldset>
      <button class="showqr">亮证 Show QR</button>`;
    card.querySelector('.showqr').onclick = () => show(l.id, card);
    $('cards').appendChild(card);
  }}
}}
async function show(id, card) {{
  const fields = [...card.querySelectorAll('input[name=f]:checked')].map(i => i.value);
  const sc = await api('POST', '/v1/holder/show-codes', {{license_id: id, fields}});
  $('qr').innerHTML = sc.qr_svg;
  $('code').textContent = sc.code;
  $('expires').textContent = new Date(sc.expires_at * 1000).toLocaleTimeString();
  $('show').hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => show(id, card), Math.max(5, sc.expires_at - Date.now() / 1000 - 30) * 1000);
}}
</script></body></html>"#
    ))
}

/// The officer's check page.
pub async fn check() -> Html<String> {
    Html(format!(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>电子证照 · 核验</title>
<style>{STYLE}</style></head><body>
<header>电子证照核验<small>licence check</small></header>
<main>
<section class="card">
  <label>亮证码 Show code <textarea id="code" rows="4" placeholder="EL1:..."></textarea></label>
  <p>或上传二维码图片 or a QR image (PNG): <input id="image" type="file" accept="image/png"></p>
  <p><button id="go">核验 Check</button></p>
</section>
<section id="result" class="card" hidden>
  <div id="verdict"></div>
  <p id="reason" class="muted"></p>
  <p id="replay" class="warn"></p>
  <dl id="facts"></dl>
  <h3>出示的信息 Disclosed fields</h3>
  <dl id="fields"></dl>
</section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, c => ({{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}})[c]);
const WORDS = {{valid: '有效 VALID', suspended: '暂扣 SUSPENDED', revoked: '吊销 REVOKED', not_in_force: '失效 NOT IN FORCE',
  code_expired: '码已过期 CODE EXPIRED', forged: '伪造 FORGED', unknown_issuer: '未知签发方 UNKNOWN ISSUER', malformed: '无法识别 NOT A CODE'}};
$('go').onclick = async () => {{
  let r;
  const file = $('image').files[0];
  if (file) r = await fetch('/v1/show-codes/verify-image', {{method: 'POST', headers: {{'content-type': 'image/png'}}, body: file}});
  else r = await fetch('/v1/show-codes/verify', {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: JSON.stringify({{code: $('code').value.trim(), place: 'officer page'}})}});
  const v = await r.json();
  const verdict = v.verdict || 'malformed';
  $('verdict').className = 'v-' + verdict;
  $('verdict').dataset.verdict = verdict;
  $('verdict').textContent = WORDS[verdict] || verdict;
  $('reason').textContent = v.reason || v.message || '';
  $('replay').textContent = v.replay ? `此码曾于 ${{new Date(v.replay.first_seen_at * 1000).toLocaleString()}} 在「${{v.replay.first_seen_at_place}}」核验过 — seen before` : '';
  const st = v.status || {{}};
  $('facts').innerHTML = [['证照 licence', v.license_id], ['编号 number', v.number], ['签发 issuer', v.issuer], ['地区 region', v.region],
    ['状态 status', st.code ? `${{st.code}} (${{st.source}}, ${{st.freshness}}, ${{new Date(st.as_of * 1000).toLocaleString()}})` : '未知 unknown']]
    .map(([k, x]) => `<dt>${{esc(k)}}</dt><dd>${{esc(x)}}</dd>`).join('');
  $('fields').innerHTML = Object.entries(v.fields || {{}}).map(([k, x]) => `<dt>${{esc(k)}}</dt><dd>${{esc(x)}}</dd>`).join('');
  $('result').hidden = false;
}};
</script></body></html>"#
    ))
}
