% rebase('layout.tpl')
<h1>Bulk enrolment</h1>
<section class="card">
<p>Upload a CSV with a header row and the columns <code>name</code> and <code>photos</code> (file names in the
zip, separated by <code>;</code>), optionally <code>person_id</code> and <code>external_id</code>, plus a zip
of the photos. Running the same files again changes nothing. The enrolment runs in the console:
you can follow its progress, or close the page and come back here for its report.</p>
<form method="post" action="/people/bulk" enctype="multipart/form-data" id="bulk-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>People (CSV) <input type="file" name="csv" accept=".csv,text/csv" required></label>
  <label>Photos (zip) <input type="file" name="zip" accept=".zip,application/zip" required></label>
  <label>Legal basis for keeping their face data <small>(recorded for every person created, with your name and the time)</small>
  <select name="basis" required>
    % if not get('default_basis'):
    <option value="" selected disabled>choose…</option>
    % end
    % for value, label in (("consent", "Consent (signed forms)"), ("contract", "Contract (employment)"), ("legal_obligation", "Legal obligation")):
    <option value="{{value}}" {{'selected' if value == get('default_basis') else ''}}>{{label}}</option>
    % end
  </select></label>
  <label class="check"><input type="checkbox" name="confirm_duplicate" value="1"> Enrol faces that look like another enrolled person anyway (I checked they are different people)</label>
  <button type="submit">Upload and enrol</button>
</form>
</section>
% if error:
<p class="flash error" id="bulk-error">{{error}}</p>
% end
% if get('job'):
<section class="card" id="bulk-last">
% if job.running:
<p>A bulk enrolment started by <strong>{{job.user}}</strong> at {{when(job.started_at)}} is running:
<a href="/people/bulk/{{job.id}}">follow its progress and report</a>.</p>
% else:
<p>Last bulk enrolment: started by <strong>{{job.user}}</strong> at {{when(job.started_at)}},
{{'finished' if job.state == 'done' else 'stopped'}} at {{when(job.finished_at)}}:
<a href="/people/bulk/{{job.id}}">see its report</a>.</p>
% end
</section>
% end
