"""Strip outputs and cell metadata from notebooks before committing: python notebooks/strip_outputs.py notebooks/*.ipynb"""
import json, sys
for path in sys.argv[1:]:
    nb = json.load(open(path))
    nb["metadata"] = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                      "language_info": {"name": "python"}}
    for cell in nb["cells"]:
        cell["metadata"] = {}
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    json.dump(nb, open(path, "w"), indent=1, ensure_ascii=False)
    open(path, "a").write("\n")
