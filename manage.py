#!/usr/bin/env python
import os
import sys

HELP_WORDS = {"help", "-h", "--help"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bacnet_project.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        import django.conf

        django.conf.settings.INSTALLED_APPS  # noqa: B018 - loads the settings now
    except (ImproperlyConfigured, ValueError) as exc:  # ValueError: e.g. a bad TIME_ZONE
        if HELP_WORDS & set(sys.argv[1:]):
            # Help runs nothing: it needs no secret key or hosts. Show it as in development.
            os.environ["DEBUG"] = "true"
            django.conf.settings._wrapped = django.conf.empty
        else:
            # A missing or wrong setting is one line that names it, not a traceback.
            sys.stderr.write(f"Configuration error: {exc}\n")
            sys.exit(2)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
