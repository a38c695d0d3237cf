from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .models import Room


@login_required
def index(request):
    """The room list, ordered by title (staff-only rooms are listed to everyone)."""
    rooms = Room.objects.order_by("title")
    return render(request, "index.html", {"rooms": rooms})
