% rebase('layout.tpl')
<h1>{{person['name']}}{{(' · ' + person['external_id']) if person.get('external_id') else ''}}</h1>
<section class="card">
<form method="post" action="/people/{{q(person['id'])}}/edit" class="grid-form" id="person-edit">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Name <input name="name" value="{{person['name']}}" required maxlength="120"></label>
  <label>Student / staff number <input name="external_id" value="{{person.get('external_id') or ''}}" maxlength="64"></label>
  <button type="submit" class="secondary">Save name and number</button>
</form>
</section>
% if results:
<section class="card" id="results">
<h2>Photo check</h2>
<ul class="results">
% for r in results:
<li class="{{'ok' if r['ok'] else 'error'}}"><strong>{{r['name']}}</strong>: {{'accepted' if r['ok'] else 'rejected'}} — {{r['message']}}</li>
% end
</ul>
</section>
% end
<div class="two-col">
<section class="card">
<h2>Photos ({{len(person.get('photos') or [])}})</h2>
<div class="thumbs">
% for ph in person.get('photos') or []:
<figure class="thumb" data-source="{{ph.get('source') or 'photo'}}"><img src="/people/{{q(person['id'])}}/photos/{{q(ph.get('id') or ph.get('photo_id') or '')}}.jpg" alt="enrolment photo" loading="lazy"><figcaption>{{'door camera' if ph.get('source') == 'device' else 'photo'}}</figcaption></figure>
% end
</div>
<form method="post" action="/people/{{q(person['id'])}}/photos" enctype="multipart/form-data" id="upload-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Add photos <small>(JPEG or PNG, one face each, the same person; 3-5 photos work best)</small>
  <input type="file" name="photos" accept="image/jpeg,image/png" multiple required></label>
  <label class="check"><input type="checkbox" name="confirm_duplicate" value="1"> This is a different person from anyone it looks like (enrol a look-alike anyway)</label>
  <button type="submit">Upload and check</button>
</form>
</section>
<section class="card">
<h2>Capture with this browser's camera</h2>
% if secure:
<video id="cam" class="cam" autoplay playsinline muted></video>
<p><button type="button" id="cam-start" class="secondary">Start camera</button>
<button type="button" id="cam-shot" data-url="/people/{{q(person['id'])}}/photos" disabled>Capture and check</button></p>
<ul class="results" id="cam-results"></ul>
% else:
<p class="muted">Browsers allow the camera only on a secure page: open the console at
<code>http://localhost</code> on the device, or turn on the HTTPS option in Settings. Uploading files works everywhere.</p>
% end
</section>
</div>
<section class="card" id="camera-enrol">
<h2>Enrol from camera</h2>
<p class="muted">The person stands in front of the door's camera and follows the prompts on its screen
("look straight", "turn slightly left"...). The device keeps good frames that pass the quality and
liveness checks; you then keep or discard each one.</p>
<form method="post" action="/people/{{q(person['id'])}}/capture" id="capture-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Frames to keep <select name="frames">
  % for n in get('frames', (3, 5, 8)):
    <option value="{{n}}" {{'selected' if n == 5 else ''}}>{{n}}</option>
  % end
  </select></label>
  <button type="submit" id="capture-start">Enrol from camera</button>
</form>
</section>
<section class="card" id="consent">
<h2>Legal basis and privacy</h2>
% consent = person.get('consent') or {}
% if consent and not consent.get('withdrawn_at'):
<p id="consent-state">Basis: <strong>{{consent.get('basis')}}</strong>, recorded by {{consent.get('recorded_by')}} at {{consent.get('recorded_at')}}.</p>
% elif consent:
<p id="consent-state" class="flash warn">Consent withdrawn by {{consent.get('withdrawn_by')}} at {{consent.get('withdrawn_at')}}; face data erased. Record a basis again before adding photos.</p>
% else:
<p id="consent-state" class="flash warn">No legal basis recorded: photos cannot be added until one is.</p>
% end
% if person.get('biometrics_erased_at'):
<p class="muted">Face data erased at {{person['biometrics_erased_at']}}.</p>
% end
% if person.get('source', 'local') == 'local' and (not consent or consent.get('withdrawn_at')):
<form method="post" action="/people/{{q(person['id'])}}/consent" class="row">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <select name="basis" required aria-label="legal basis"><option value="consent">Consent</option><option value="contract">Contract</option><option value="legal_obligation">Legal obligation</option></select>
  <button type="submit" class="secondary">Record basis</button>
</form>
% end
<p><a class="button secondary" href="/people/{{q(person['id'])}}/export" id="export-link">Everything held about {{person['name']}} (subject access)</a></p>
% if consent and not consent.get('withdrawn_at') and person.get('source', 'local') == 'local':
<form method="post" action="/people/{{q(person['id'])}}/withdraw" data-confirm="Record that {{person['name']}} withdrew consent and erase their face data?">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <button type="submit" class="secondary">Consent withdrawn: erase face data</button>
</form>
% end
</section>
<section class="card danger-zone">
<form method="post" action="/people/{{q(person['id'])}}/erase" data-confirm="Erase every photo and face template of {{person['name']}} (attendance keeps the name)?">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <button type="submit" class="danger" id="erase-faces">Erase face data</button>
</form>
<form method="post" action="/people/{{q(person['id'])}}/delete" data-confirm="Delete {{person['name']}} with all photos and face data?">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label><input type="checkbox" name="full" value="1"> also delete their attendance records (full erasure; completed sessions lose their rows)</label>
  <button type="submit" class="danger" id="delete-person">Delete this person</button>
</form>
</section>
