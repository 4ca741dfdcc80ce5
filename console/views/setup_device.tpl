% rebase('layout.tpl')
<section class="card">
<h1>Device setup</h1>
<form method="post" action="/setup/device" class="grid-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <fieldset><legend>Identity</legend>
  <label>Device name <input name="name" value="{{cfg.device.name}}" maxlength="80" required></label>
  <label>Site <input name="site" value="{{cfg.device.site}}" required pattern="[A-Za-z0-9_.-]{1,64}"></label>
  <label>Room <input name="room" value="{{cfg.device.room}}" required pattern="[A-Za-z0-9_.-]{1,64}"></label>
  <label>Time zone <input name="timezone" value="{{cfg.device.timezone}}" list="zones" required></label>
  <datalist id="zones">
  % for z in zones:
  <option value="{{z}}">
  % end
  </datalist>
  </fieldset>
  <fieldset><legend>Camera</legend>
  <label>Source <input name="camera_source" value="{{cfg.camera.source}}" list="sources"></label>
  <datalist id="sources"><option value="auto"><option value="picamera2"><option value="webcam"><option value="webcam:1"></datalist>
  <p><button type="button" class="secondary" data-snapshot="snap-img">Test snapshot</button></p>
  <img id="snap-img" class="snapshot hidden" alt="camera test snapshot">
  </fieldset>
  <fieldset><legend>Broker (MQTT)</legend>
  <label>Host <input name="mqtt_host" value="{{cfg.mqtt.host}}"></label>
  <label>Port <input name="mqtt_port" type="number" min="1" max="65535" value="{{cfg.mqtt.port}}"></label>
  <label><input type="checkbox" name="mqtt_tls" value="1" {{'checked' if cfg.mqtt.tls else ''}}> TLS</label>
  <p><button type="button" class="secondary" data-post="/api/broker-test" data-form-fields="mqtt_host,mqtt_port,mqtt_tls" data-out="broker-out">Test connection</button> <output id="broker-out"></output></p>
  </fieldset>
  <fieldset><legend>GPIO (BCM pin numbers, empty = not fitted)</legend>
  % for part in ("green", "amber", "red", "buzzer", "relay", "button"):
  <label>{{part}} <input name="pin_{{part}}" type="number" min="0" max="27" value="{{'' if getattr(cfg.gpio, part).pin is None else getattr(cfg.gpio, part).pin}}"></label>
  % end
  <p><button type="button" class="secondary" data-post="/api/indicators-test" data-out="led-out">Blink each LED</button> <output id="led-out"></output></p>
  </fieldset>
  <button type="submit">Save</button>
</form>
</section>
