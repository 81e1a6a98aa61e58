"""The ESP's id of the email a delivery report is about: soft bounces count once per email."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0017_known_devices"),
    ]

    operations = [
        migrations.AddField(
            model_name="deliveryevent",
            name="message_id",
            field=models.CharField(blank=True, editable=False, max_length=255),
        ),
    ]
