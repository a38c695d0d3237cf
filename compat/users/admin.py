from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import forms as auth_forms

from .models import User

# Django 5.1+ admin adds users with AdminUserCreationForm (usable/unusable password); 4.2 with
# UserCreationForm.
CreationForm = getattr(auth_forms, "AdminUserCreationForm", auth_forms.UserCreationForm)


class UserChangeForm(auth_forms.UserChangeForm):
    class Meta(auth_forms.UserChangeForm.Meta):
        model = User


class UserCreationForm(CreationForm):
    class Meta(CreationForm.Meta):
        model = User


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    """As the fork registers its user: Django's UserAdmin plus the `name` field."""

    form = UserChangeForm
    add_form = UserCreationForm
    fieldsets = (("User", {"fields": ("name",)}),) + auth_admin.UserAdmin.fieldsets
    list_display = ["username", "name", "is_superuser"]
    search_fields = ["name"]
