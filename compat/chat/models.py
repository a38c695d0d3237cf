from django.db import models


class Room(models.Model):
    """A chat room; members of the socket group `room-<id>` receive its messages."""

    title = models.CharField(max_length=255)
    # Only users with is_staff may join.
    staff_only = models.BooleanField(default=False)

    def __str__(self):
        return self.title

    @property
    def group_name(self):
        """The channel-layer group of this room."""
        return "room-%s" % self.id
