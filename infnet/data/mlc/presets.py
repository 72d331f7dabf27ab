"""MULAN dataset specs: file layout, SHA-256 checksums and the public download location."""

from __future__ import annotations

from dataclasses import dataclass, field

MULAN_COMMIT = "43f6389095ad71984264db4387a8074b22bc7d4a"
MULAN_BASE_URL = f"https://raw.githubusercontent.com/tsoumakas/mulan/{MULAN_COMMIT}/data/multi-label"


@dataclass(frozen=True)
class MulanSpec:
    """How a MULAN dataset ``name`` is laid out; ``sha256`` maps file names to expected hex checksums.

    With ``test_fraction`` None the files are ``<name>-train.arff``, ``<name>-test.arff`` and
    ``<name>.xml``; otherwise ``<name>.arff`` and ``<name>.xml``, and the single ARFF is split into
    train/test with ``split_seed`` (``test_fraction`` of the rows go to test).
    """

    name: str
    sha256: dict[str, str] = field(default_factory=dict)
    test_fraction: float | None = None
    split_seed: int | None = None

    @property
    def xml_name(self) -> str:
        return f"{self.name}.xml"

    @property
    def arff_names(self) -> list[str]:
        """[train, test] ARFF file names, or [single] for a dataset without an official split."""
        if self.test_fraction is None:
            return [f"{self.name}-train.arff", f"{self.name}-test.arff"]
        return [f"{self.name}.arff"]

    @property
    def file_names(self) -> list[str]:
        return [*self.arff_names, self.xml_name]

    def file_url(self, file_name: str, base_url: str = MULAN_BASE_URL) -> str:
        """URL of ``file_name`` under ``base_url``: ``<base>/<name>/<file>``."""
        return f"{base_url.rstrip('/')}/{self.name}/{file_name}"


PRESETS: dict[str, MulanSpec] = {
    "bibtex": MulanSpec(
        "bibtex",
        {
            "bibtex-train.arff": "8dcc9de6e0b2cebaec8c1f4fac78431adeeb73cfd3ab879b530a66d366e59174",
            "bibtex-test.arff": "9b03329cde64d3f994bdf7fbbac3f3b10fe185c311cb9ae725475f59c7f3f922",
            "bibtex.xml": "08fe20013c1e75dcf1888c185f5187c95e76495b8518ce289b4d3afce38d1232",
        },
    ),
    "delicious": MulanSpec(
        "delicious",
        {
            "delicious-train.arff": "030186cdb542ebdd32052fcdbb1ebe30115b3a22518c1b4b198c45eb827aebe1",
            "delicious-test.arff": "2dfb01723a819914b0ca83361177ed413ce3f2169851d9f228d4692915d63944",
            "delicious.xml": "4e0c0f93c7d86a39b9fca4aaefaa00e9428f2c80277732dfbf03ca48e2c14da2",
        },
    ),
    # MULAN ships one bookmarks.arff (87856 rows) and no official split: we use 2/3 train, 1/3 test
    # drawn with this fixed seed (recorded in the dataset's meta["train_test_split"]).
    "bookmarks": MulanSpec(
        "bookmarks",
        {
            "bookmarks.arff": "5ce6788f4ed7704bb9b0f474b504c840055c68380f94f2889bc1e2a36bf5efd8",
            "bookmarks.xml": "710acecc1aa359f357df8766e9359190e2788c05e4927bc73dc280d3b80c9d97",
        },
        test_fraction=1 / 3,
        split_seed=20080915,
    ),
}


def mulan_spec(name: str) -> MulanSpec:
    """The preset for ``name``, or a generic train/test spec without checksums for any other stem."""
    return PRESETS.get(name, MulanSpec(name))
