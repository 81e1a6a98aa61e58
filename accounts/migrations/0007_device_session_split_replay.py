"""Device sessions remember when the just-rotated refresh token last came back from another network."""

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
    ]
