% rebase('layout.tpl')
<h1>Settings</h1>
<p><a href="/setup/device">Device, camera, broker and GPIO setup</a> · <a href="/users">Users</a> · <a href="/account">Change my password</a></p>
<div class="two-col">
<section class="card">
<h2>Recognition</h2>
<form method="post" action="/settings/recognition" id="form-recognition">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Security level <small>(false accepts per visit of someone not enrolled, at the roster size in force)</small>
    <select name="security_level">
  % for level, label in (("low", "low: 1 in 1,000"), ("normal", "normal: 1 in 10,000"), ("high", "high: 1 in 100,000")):
  <option value="{{level}}" {{'selected' if val('security_level', cfg.recognition.security_level) == level else ''}}>{{label}}</option>
  % end
  </select>
    % include('field_error.tpl', key='recognition.security_level')
  </label>
  <label>Match threshold <small>(expert override, cosine; empty = from the security level)</small>
    <input name="match_threshold" type="number" step="0.01" min="-1" max="1" value="{{val('match_threshold', cfg.recognition.match_threshold)}}" class="{{'invalid' if err('recognition.match_threshold') else ''}}">
    % include('field_error.tpl', key='recognition.match_threshold')
  </label>
  <label>Margin over the runner-up <small>(cosine; empty = the model's default)</small>
    <input name="margin" type="number" step="0.01" min="0" max="1" value="{{val('margin', cfg.recognition.margin)}}" class="{{'invalid' if err('recognition.margin') else ''}}">
    % include('field_error.tpl', key='recognition.margin')
  </label>
  <label>Liveness policy <select name="policy">
  % for p in ("blink", "blink_challenge", "challenge", "off"):
  <option value="{{p}}" {{'selected' if val('policy', cfg.liveness.policy) == p else ''}}>{{p}}{{' (testing only)' if p == 'off' else ''}}</option>
  % end
  </select>
    % include('field_error.tpl', key='liveness.policy')
  </label>
  <button type="submit">Save</button>
</form>
</section>
<section class="card">
<h2>Retention</h2>
<form method="post" action="/settings/retention" id="form-retention">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Keep attendance records (days) <input name="retention_days" type="number" min="1" max="3650" value="{{val('retention_days', cfg.store.retention_days)}}" required class="{{'invalid' if err('store.retention_days') else ''}}">
    % include('field_error.tpl', key='store.retention_days')
  </label>
  <label>Keep crops of unknown and spoof faces (days) <input name="unknown_retention_days" type="number" min="1" max="3650" value="{{val('unknown_retention_days', cfg.store.unknown_retention_days)}}" required class="{{'invalid' if err('store.unknown_retention_days') else ''}}">
    % include('field_error.tpl', key='store.unknown_retention_days')
  </label>
  <label>Keep the audit log (days) <input name="audit_retention_days" type="number" min="1" max="3650" value="{{val('audit_retention_days', cfg.store.audit_retention_days)}}" required class="{{'invalid' if err('store.audit_retention_days') else ''}}">
    % include('field_error.tpl', key='store.audit_retention_days')
  </label>
  <button type="submit">Save</button>
</form>
</section>
<section class="card">
<h2>MQTT broker</h2>
<form method="post" action="/settings/mqtt" id="form-mqtt">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label><input type="checkbox" name="mqtt_enabled" value="1" {{'checked' if checked('mqtt_enabled', cfg.mqtt.enabled) else ''}}> Report to the broker
    % include('field_error.tpl', key='mqtt.enabled')
  </label>
  <label>Host <input name="mqtt_host" value="{{val('mqtt_host', cfg.mqtt.host)}}" class="{{'invalid' if err('mqtt.host') else ''}}">
    % include('field_error.tpl', key='mqtt.host')
  </label>
  <label>Port <input name="mqtt_port" type="number" min="1" max="65535" value="{{val('mqtt_port', cfg.mqtt.port)}}" class="{{'invalid' if err('mqtt.port') else ''}}">
    % include('field_error.tpl', key='mqtt.port')
  </label>
  <label>User name <input name="mqtt_username" value="{{val('mqtt_username', cfg.mqtt.username)}}" autocomplete="off" class="{{'invalid' if err('mqtt.username') else ''}}">
    % include('field_error.tpl', key='mqtt.username')
  </label>
  <label><input type="checkbox" name="mqtt_tls" value="1" {{'checked' if checked('mqtt_tls', cfg.mqtt.tls) else ''}}> TLS
    % include('field_error.tpl', key='mqtt.tls')
  </label>
  <p class="muted">The password lives in a 0600 file set at provisioning ({{'set' if cfg.mqtt.password_file else 'none'}}).</p>
  <button type="submit">Save</button>
  <button type="button" class="secondary" data-post="/api/broker-test" data-form-fields="mqtt_host,mqtt_port,mqtt_tls" data-out="broker-out">Test connection</button> <output id="broker-out"></output>
</form>
</section>
<section class="card" id="kiosk">
<h2>Kiosk screen</h2>
<p>The device's own screen (a browser on this machine) shows <a href="/kiosk">the kiosk</a> without a login.
A screen elsewhere needs this device's kiosk link; revoke it when a screen is lost.</p>
% if kiosk_url:
<p><code class="kiosk-link" id="kiosk-url">{{kiosk_url}}</code></p>
% else:
<p class="muted" id="kiosk-url">No kiosk link: only the device's own screen shows the kiosk.</p>
% end
<form method="post" action="/settings/kiosk/renew" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="secondary" id="kiosk-renew">{{'Make a new link' if kiosk_url else 'Make a kiosk link'}}</button></form>
% if kiosk_url:
<form method="post" action="/settings/kiosk/revoke" class="inline" data-confirm="Screens using this link will stop showing the kiosk. Revoke?"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="danger" id="kiosk-revoke">Revoke</button></form>
% end
</section>
<section class="card">
<h2>Firmware</h2>
% restart = (fw_status or {}).get('restart_needed') or []
<p>{{('Settings saved since the last start need a restart: ' + ', '.join(restart) + '.') if restart else 'Restart the firmware (camera, recognition, MQTT) to apply device, camera, broker and GPIO settings.'}}</p>
<form method="post" action="/settings/restart" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="{{'' if restart else 'secondary'}}" id="restart-settings">Restart firmware</button></form>
</section>
<section class="card">
<h2>Diagnostics</h2>
<p>A zip with the configuration (no secrets), software versions, device status, the audit log and the last lines of the firmware and console logs (passwords, tokens and keys redacted).</p>
<p><a class="button secondary" href="/settings/diagnostics.zip" id="diag">Download diagnostics bundle</a></p>
<p><button type="button" class="secondary" data-post="/api/indicators-test" data-out="led-out">Blink each LED</button> <output id="led-out"></output></p>
</section>
</div>
