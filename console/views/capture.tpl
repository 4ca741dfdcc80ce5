% rebase('layout.tpl')
<h1>Enrol {{person['name']}} from the door camera</h1>
<section class="card" id="capture" data-capture="/api/capture" data-person="{{person['id']}}">
<p>State: <strong id="capture-state">{{status['state']}}</strong> · kept <span id="capture-kept">{{status['kept']}}</span> of {{status['target']}}</p>
<p class="kiosk-prompt" id="capture-prompt">{{status['prompt']}}</p>
<p class="muted" id="capture-message">{{status['message']}}</p>
<form method="post" action="/people/{{q(person['id'])}}/capture/keep" id="capture-keep">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <p class="muted">Untick the frames you do not want to keep (blurred, someone else, eyes closed...).</p>
  <div class="thumbs" id="capture-frames">
  % for f in status['frames']:
    <label class="thumb"><img src="/capture/frames/{{f['index']}}.jpg" alt="camera frame {{f['index'] + 1}}"><input type="checkbox" name="keep" value="{{f['index']}}" checked> keep</label>
  % end
  </div>
  <label class="check"><input type="checkbox" name="confirm_duplicate" value="1"> This is a different person from anyone it looks like (keep a look-alike anyway)</label>
  <button type="submit" id="capture-save">Save kept frames</button>
</form>
<form method="post" action="/people/{{q(person['id'])}}/capture/cancel">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <button type="submit" class="secondary" id="capture-cancel">Cancel and discard all</button>
</form>
</section>
