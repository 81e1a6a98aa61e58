"""Rotated refresh tokens keep their sealed successor; device sessions note replays from another network."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_recovery_links"),
    ]

    operations = [
        migrations.AddField(
            model_name="devicesession",
            name="split_replay_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="rotatedrefreshtoken",
            name="successor_sealed",
            field=models.CharField(blank=True, db_default="", editable=False, max_length=64),
        ),
        migrations.AddIndex(
            model_name="rotatedrefreshtoken",
            index=models.Index(
                condition=models.Q(("successor_sealed", ""), _negated=True),
                fields=["session"],
                name="rotated_sealed_session_idx",
            ),
        ),
    ]
