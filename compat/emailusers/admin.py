from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import forms as auth_forms

from .models import EmailUser

# Django 5.1+ admin adds users with AdminUserCreationForm (usable/unusable password); 4.2 with
# UserCreationForm.
CreationForm = getattr(auth_forms, "AdminUserCreationForm", auth_forms.UserCreationForm)


class EmailUserChangeForm(auth_forms.UserChangeForm):
    class Meta(auth_forms.UserChangeForm.Meta):
        model = EmailUser


class EmailUserCreationForm(CreationForm):
    class Meta(CreationForm.Meta):
        model = EmailUser
        fields = ("email", "username")


@admin.register(EmailUser)
class EmailUserAdmin(auth_admin.UserAdmin):
    form = EmailUserChangeForm
    add_form = EmailUserCreationForm
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "username", "password1", "password2")}),
    )
    list_display = ["email", "username", "is_staff"]
    search_fields = ["email", "username"]
    ordering = ["email"]
