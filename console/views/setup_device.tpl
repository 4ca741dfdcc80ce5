% rebase('layout.tpl')
<section class="card">
<h1>Device setup</h1>
<form method="post" action="/setup/device" class="grid-form" id="device-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <fieldset><legend>Identity</legend>
  <label>Device id <small>(unique in the fleet: MQTT client id and topic; made from this machine's id at install)</small>
    <input name="id" value="{{val('id', cfg.device.id)}}" maxlength="64" pattern="[A-Za-z0-9_.-]{1,64}" class="{{'invalid' if err('device.id') else ''}}">
    % include('field_error.tpl', key='device.id')
  </label>
  <label>Device name <input name="name" value="{{val('name', cfg.device.name)}}" maxlength="80" required>
    % include('field_error.tpl', key='device.name')
  </label>
  <label>Site <input name="site" value="{{val('site', cfg.device.site)}}" required pattern="[A-Za-z0-9_.-]{1,64}">
    % include('field_error.tpl', key='device.site')
  </label>
  <label>Room <input name="room" value="{{val('room', cfg.device.room)}}" required pattern="[A-Za-z0-9_.-]{1,64}">
    % include('field_error.tpl', key='device.room')
  </label>
  <label>Time zone <input name="timezone" value="{{val('timezone', cfg.device.timezone)}}" list="zones" required>
    % include('field_error.tpl', key='device.timezone')
  </label>
  <datalist id="zones">
  % for z in zones:
  <option value="{{z}}">
  % end
  </datalist>
  </fieldset>
  <fieldset><legend>Camera</legend>
  <label>Source <input name="camera_source" value="{{val('camera_source', cfg.camera.source)}}" list="sources">
    % include('field_error.tpl', key='camera.source')
  </label>
  <datalist id="sources"><option value="auto"><option value="picamera2"><option value="webcam"><option value="webcam:1"></datalist>
  <p><button type="button" class="secondary" data-snapshot="snap-img">Test snapshot</button></p>
  <img id="snap-img" class="snapshot hidden" alt="camera test snapshot">
  </fieldset>
  <fieldset><legend>Broker (MQTT)</legend>
  <label>Host <input name="mqtt_host" value="{{val('mqtt_host', cfg.mqtt.host)}}">
    % include('field_error.tpl', key='mqtt.host')
  </label>
  <label>Port <input name="mqtt_port" type="number" min="1" max="65535" value="{{val('mqtt_port', cfg.mqtt.port)}}">
    % include('field_error.tpl', key='mqtt.port')
  </label>
  <label><input type="checkbox" name="mqtt_tls" value="1" {{'checked' if tls else ''}}> TLS</label>
  <p><button type="button" class="secondary" data-post="/api/broker-test" data-form-fields="mqtt_host,mqtt_port,mqtt_tls" data-out="broker-out">Test connection</button> <output id="broker-out"></output></p>
  </fieldset>
  <fieldset><legend>GPIO (BCM pin numbers, empty = not fitted)</legend>
  % for part in ("green", "amber", "red", "buzzer", "relay", "button"):
  % pin = getattr(cfg.gpio, part).pin
  <label>{{part}} <input name="pin_{{part}}" type="number" min="0" max="27" value="{{val('pin_' + part, '' if pin is None else pin)}}">
    % include('field_error.tpl', key='gpio.%s.pin' % part)
  </label>
  % end
  <p><button type="button" class="secondary" data-post="/api/indicators-test" data-out="led-out">Blink each LED</button> <output id="led-out"></output></p>
  </fieldset>
  <button type="submit">Save</button>
</form>
</section>
