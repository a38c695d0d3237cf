"""A stand-in for django-allauth's `allauth.account.auth_backends.AuthenticationBackend`, which
the Whisper fork lists in AUTHENTICATION_BACKENDS: a ModelBackend subclass that authenticates
like ModelBackend and resolves a session's user with ModelBackend.get_user (by primary key,
refusing inactive users). Its dotted path is what Django's login() stores in
`_auth_user_backend` when it authenticated the user.

It imports no model, so any compat profile may list it."""
from django.contrib.auth.backends import ModelBackend


class AuthenticationBackend(ModelBackend):
    pass
