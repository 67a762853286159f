"""The provided minimal image: built from Debian packages at start-up, published publicly
under the provider alias, and not registered twice for the same version."""

import shutil
import subprocess

import pytest

from conftest import CONFIG, KILN_BIN, KilnServer, wait_until


@pytest.mark.skipif(not shutil.which("apt-get") or not shutil.which("mkfs.ext4"), reason="needs apt-get and mkfs.ext4")
def test_minimal_image_is_published_for_everyone():
    server = KilnServer(config_text='provided_images = ["minimal"]\n' + CONFIG).start()
    try:
        a, b = server.client("a"), server.client("b")

        def provided():
            return a.describe_images(Owners=["kiln"])["Images"]

        [image] = wait_until(provided, timeout=240, interval=0.5, what="the minimal image to be published")
        assert image["Name"].startswith("kiln-minimal-")
        assert image["ImageOwnerAlias"] == "kiln" and image["Public"] is True and image["State"] == "available"
        assert image["RootDeviceType"] == "ebs" and image["Architecture"] == "x86_64"
        assert image["OwnerId"] not in ("111111111111", "222222222222", "333333333333")
        # The family's latest alias resolves wherever an image id is accepted.
        latest = "resolve:ssm:/kiln/images/kiln-minimal/latest"
        assert [i["ImageId"] for i in b.describe_images(ImageIds=[latest])["Images"]] == [image["ImageId"]]
        with pytest.raises(Exception) as e:
            b.describe_images(ImageIds=["resolve:ssm:/kiln/images/no-such-family/latest"])
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
        # Every account sees it, by alias and by owner id; it is in every region.
        assert [i["ImageId"] for i in b.describe_images(Owners=["kiln"])["Images"]] == [image["ImageId"]]
        assert b.describe_images(ExecutableUsers=["all"], Owners=[image["OwnerId"]])["Images"][0]["ImageId"] == image["ImageId"]
        wait_until(lambda: server.client("a", "eu-west-1").describe_images(Owners=["kiln"])["Images"], timeout=60,
                   what="the image in eu-west-1")
        # Others can launch it but not change it.
        with pytest.raises(Exception) as e:
            b.modify_image_attribute(ImageId=image["ImageId"], Description={"Value": "mine now"})
        assert e.value.response["Error"]["Code"] == "AuthFailure"

        # A restart with the same package versions registers nothing new.
        before = len(server.log_path.read_text())
        server.stop()
        server.start()
        wait_until(lambda: server.log_path.read_text()[before:].count("already published") == 3, timeout=120,
                   what="the restarted server to find the image published in all three regions")
        assert [i["ImageId"] for i in a.describe_images(Owners=["kiln"])["Images"]] == [image["ImageId"]]

        # `kiln images build` reuses the server's cache and names the same version.
        built = subprocess.run([str(KILN_BIN), "--data-dir", str(server.data_dir), "images", "build", "minimal"],
                               capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stderr
        assert built.stdout.split("\t")[0] == image["Name"]
        assert "built minimal image" not in built.stderr, "a cached image is not rebuilt"
    finally:
        server.cleanup()
