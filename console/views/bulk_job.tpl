% rebase('layout.tpl')
% running = job['state'] == 'running'
<h1>Bulk enrolment</h1>
<section class="card" id="bulk-job" data-state="{{job['state']}}"{{!' data-poll="/api/bulk/%s"' % job['id'] if running else ''}}>
<p>Started by <strong id="bulk-user">{{job['user']}}</strong> at {{when(job['started_at'])}}{{(', ended at ' + when(job['finished_at'])) if job['finished_at'] else ''}}.</p>
<p><span id="bulk-state" class="pill {{job['state']}}">{{job['state']}}</span>
<span id="bulk-done">{{job['done']}}</span> of <span id="bulk-total">{{job['total']}}</span> rows done</p>
<progress id="bulk-progress" max="{{max(job['total'], 1)}}" value="{{job['done']}}"></progress>
% if running:
<p id="bulk-note">The enrolment goes on in the console if you close this page: its report stays under
People → Bulk enrolment.</p>
% end
</section>
% if job['error']:
<p class="flash error" id="bulk-error">{{job['error']}}</p>
<p>The rows listed below were done before it stopped (those people are enrolled): run the same files
again once the firmware answers to do the rest (rows already done report "already enrolled").</p>
% end
% if reports or running:
% include('bulk_report.tpl', reports=reports, counts=counts, running=running)
% end
<p><a href="/people/bulk">Upload another CSV and zip</a></p>
