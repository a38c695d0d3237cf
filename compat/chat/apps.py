from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    label = "chat"
    # The table's id is a plain AutoField (integer), as in Whisper's schema.
    default_auto_field = "django.db.models.AutoField"
