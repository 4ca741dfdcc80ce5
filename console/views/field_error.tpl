% if err(key):
<span class="field-error" role="alert" data-field="{{key}}">{{err(key)}}</span>
% end
