"""Forms of the pages. They check types and sizes; ``request_job`` checks the meaning
(the same rules as the API), so its ``JobError`` messages reach the user as they are."""

from __future__ import annotations

from typing import Any

from django import forms

from discovery.api.ranges import RANGE_LABELS
from discovery.jobs import WHO_IS_WILDCARD


class DiscoverForm(forms.Form):
    low = forms.IntegerField(
        required=False, min_value=0, max_value=WHO_IS_WILDCARD, label="Lowest instance"
    )
    high = forms.IntegerField(
        required=False, min_value=0, max_value=WHO_IS_WILDCARD, label="Highest instance"
    )
    targets = forms.CharField(
        required=False,
        max_length=8000,
        label="Target addresses",
        help_text="Optional: addresses to ask directly, separated by spaces or commas "
        "(e.g. 192.168.1.20 192.168.1.21:47809).",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def job_parameters(self) -> dict[str, Any]:
        data = self.cleaned_data
        parameters: dict[str, Any] = {}
        if data.get("low") is not None:
            parameters["low"] = data["low"]
        if data.get("high") is not None:
            parameters["high"] = data["high"]
        targets = (data.get("targets") or "").replace(",", " ").split()
        if targets:
            parameters["targets"] = targets
        return parameters

    def error_text(self) -> str:
        return " ".join(
            f"{self.fields[name].label if name in self.fields else ''}: {message}".lstrip(": ")
            for name, messages in self.errors.items()
            for message in messages
        )


# The value format of <input type="datetime-local">.
LOCAL_INPUT = "%Y-%m-%dT%H:%M"


class RangeForm(forms.Form):
    """The trend range picker of the point page (validated by ``resolve_range``)."""

    range = forms.ChoiceField(choices=list(RANGE_LABELS.items()), required=False)
    start = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT),
    )
    end = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT),
    )


class WriteForm(forms.Form):
    """The point page's write form; ``commanding.check_value`` checks the value itself
    against the point (type, states, limits)."""

    value = forms.CharField(max_length=64)
    priority = forms.IntegerField(min_value=1, max_value=16, initial=8)
    duration = forms.ChoiceField(
        required=False,
        choices=[
            ("", "until relinquished"),
            ("30m", "for 30 min"),
            ("1h", "for 1 h"),
            ("4h", "for 4 h"),
            ("until", "until ..."),
        ],
    )
    until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT),
    )
    reason = forms.CharField(required=False, max_length=500)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("duration") == "until" and not data.get("until"):
            self.add_error("until", "Give the time the override ends.")
        return data


class RelinquishForm(forms.Form):
    priority = forms.IntegerField(min_value=1, max_value=16, initial=8)
    reason = forms.CharField(required=False, max_length=500)


def form_errors(form: forms.Form) -> str:
    """A form's errors as one line for a message."""
    return " ".join(
        f"{form.fields[name].label or name if name in form.fields else ''}: {message}".lstrip(": ")
        for name, messages in form.errors.items()
        for message in messages
    )
