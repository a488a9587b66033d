"""Write tests/data/hats_sim12: twelve simulated stars as a HATS catalogue made by hats-import itself, so that
the reader of sedppl.io.partitions is tested on the layout the LSDB tools write, not only on our idea of it.

    pip install hats-import==0.11.1   # not a dependency of sedppl: only to regenerate the folder
    python tests/data/make_hats.py

The stars are ``simulate_catalog(jax.random.key(12), 12, sed_model(prior=<0.02 mag floor>), NoiseModel())`` with positions spread over the sky
(seeded), small partitions (``pixel_threshold=3``) so that the catalogue has several.
"""

from pathlib import Path
import shutil
import tempfile

import jax
import numpy as np

from sedppl.io.catalog import write_table
from sedppl.model.generative import sed_model
from sedppl.model.priors import Prior
from sedppl.model.simulate import NoiseModel, simulate_catalog

HERE = Path(__file__).parent
NAME = "hats_sim12"


def stars():
    fixed_floor = Prior.default(sys_floor=0.02)
    table = simulate_catalog(jax.random.key(12), 12, sed_model(prior=fixed_floor), NoiseModel())  # as first made
    rng = np.random.default_rng(12)
    table["ra"] = rng.uniform(0.0, 360.0, len(table))
    table["dec"] = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, len(table))))
    return table


def main() -> None:
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    with tempfile.TemporaryDirectory() as tmp:
        source = write_table(stars(), Path(tmp) / "stars.parquet")
        shutil.rmtree(HERE / NAME, ignore_errors=True)
        args = ImportArguments(output_artifact_name=NAME, input_file_list=[str(source)], file_reader="parquet",
                               ra_column="ra", dec_column="dec", output_path=str(HERE), pixel_threshold=3,
                               highest_healpix_order=2, tmp_dir=tmp, progress_bar=False)
        with Client(n_workers=1, threads_per_worker=1, processes=False) as client:
            pipeline_with_client(args, client)
    print(sorted(p.relative_to(HERE).as_posix() for p in (HERE / NAME).rglob("*") if p.is_file()))


if __name__ == "__main__":
    main()
