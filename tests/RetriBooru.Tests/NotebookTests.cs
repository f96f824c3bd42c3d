using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;

namespace RetriBooru.Tests;

/// <summary>Restores the pinned notebook tools once, so `dotnet test` stays the only command.</summary>
public sealed class NotebookToolFixture
{
    public NotebookToolFixture()
    {
        var (code, output) = NotebookRunner.Run("dotnet", ["tool", "restore"], RepoPaths.Root, TimeSpan.FromMinutes(5));
        if (code != 0) throw new InvalidOperationException($"dotnet tool restore failed ({code}):\n{output}");
    }
}

public static class NotebookRunner
{
    public static (int ExitCode, string Output) Run(string file, IEnumerable<string> args, string workingDirectory, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeout}");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>Executes a notebook headless with dotnet-repl in smoke mode and returns its executed copy.</summary>
    public static JsonNode Execute(string notebook, string outputDirectory, IDictionary<string, string>? environment = null)
    {
        var executed = Path.Combine(outputDirectory, Path.GetFileNameWithoutExtension(notebook) + ".executed.ipynb");
        // TMPDIR: the notebooks' smoke-mode files (Path.GetTempPath()) land in the test's folder and go with it.
        var variables = new Dictionary<string, string> { ["RETRIBOORU_SMOKE"] = "1", ["TMPDIR"] = outputDirectory };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) variables[k] = v;
        var (code, output) = Run("dotnet",
            ["repl", "--run", notebook, "--exit-after-run", "--output-format", "ipynb", "--output-path", executed],
            RepoPaths.Root, TimeSpan.FromMinutes(10), variables);
        Assert.True(File.Exists(executed), $"dotnet repl wrote no output for {notebook} (exit {code}):\n{output}");
        var document = JsonNode.Parse(File.ReadAllText(executed))!;
        var errors = Outputs(document).Where(o => (string?)o["output_type"] == "error")
            .Select(o => $"{o["ename"]}: {o["evalue"]}").ToList();
        Assert.True(errors.Count == 0, $"{notebook} produced errors:\n{string.Join("\n", errors)}");
        Assert.True(code == 0, $"dotnet repl exited {code} for {notebook}:\n{output}");
        return document;
    }

    public static IEnumerable<JsonNode> Outputs(JsonNode notebook) =>
        notebook["cells"]!.AsArray()
            .Where(c => (string?)c!["cell_type"] == "code")
            .SelectMany(c => c!["outputs"]?.AsArray() ?? new JsonArray())
            .Select(o => o!);

    /// <summary>All text of every output, by mime type (text/plain, text/html, image/png ...).</summary>
    public static IEnumerable<(string Mime, string Content)> OutputData(JsonNode notebook) =>
        Outputs(notebook).SelectMany(o =>
            o["data"] is JsonObject data
                ? data.Select(kv => (kv.Key, kv.Value is JsonArray lines ? string.Concat(lines.Select(l => (string?)l)) : kv.Value?.ToString() ?? ""))
                : o["text"] is JsonNode text ? [("stream", text is JsonArray ls ? string.Concat(ls.Select(l => (string?)l)) : text.ToString())] : []);
}

public class NotebookTests : IClassFixture<NotebookToolFixture>
{
    readonly ITestOutputHelper log;

    // The fixture's constructor restores the tools; taking it here makes xunit run it first.
    public NotebookTests(NotebookToolFixture tools, ITestOutputHelper log)
    {
        ArgumentNullException.ThrowIfNull(tools);
        this.log = log;
    }

    [Fact]
    public void Notebooks_are_committed_with_outputs_cleared()
    {
        foreach (var path in Directory.GetFiles(Path.Combine(RepoPaths.Root, "notebooks"), "*.ipynb"))
        {
            var document = JsonNode.Parse(File.ReadAllText(path))!;
            Assert.True(!NotebookRunner.Outputs(document).Any(), $"{path} has outputs; clear them before committing");
        }
    }

    [Fact]
    public void Every_notebook_cell_has_a_stable_unique_id_as_nbformat_4_5_requires()
    {
        foreach (var path in Directory.GetFiles(Path.Combine(RepoPaths.Root, "notebooks"), "*.ipynb"))
        {
            var document = JsonNode.Parse(File.ReadAllText(path))!;
            Assert.True((int)document["nbformat"]! == 4 && (int)document["nbformat_minor"]! >= 5, $"{path}: cell ids need nbformat 4.5");
            var ids = document["cells"]!.AsArray().Select(c => (string?)c!["id"]).ToList();
            Assert.All(ids, id => Assert.Matches("^[a-zA-Z0-9_-]{1,64}$", id ?? ""));
            Assert.Equal(ids.Count, ids.Distinct().Count());
        }
    }

    [Fact]
    public void Environment_notebook_runs_torch_in_the_kernel()
    {
        using var tmp = new TempDir();
        var document = NotebookRunner.Execute("notebooks/00-environment.ipynb", tmp.Path);
        var text = string.Join("\n", NotebookRunner.OutputData(document).Select(d => d.Content));
        log.WriteLine(text);
        Assert.Contains("libtorch 2.10", text);
        Assert.Contains("conv output 1x4x8x8", text);
        var mimes = NotebookRunner.OutputData(document).ToList();
        Assert.Contains(mimes, d => d.Mime == "text/html" && d.Content.Contains("data:image/png;base64,"));
        var chart = Assert.Single(mimes, d => d.Mime == "text/html" && d.Content.Contains("Plotly.newPlot")).Content;
        // Checked with booleans: a failing Assert.Contains would print 3.5 MB of plotly.js.
        Assert.True(chart.Contains("plotly.js v" + RetriBooru.Experiments.PlotlyHtml.PlotlyJsVersion), "the first chart must embed plotly.js");
        Assert.False(chart.Contains("<script src="), "charts must not load scripts from the network");
    }

    [Fact]
    public void A_notebook_kernel_uses_the_shipped_libtorch_when_another_libtorch_cpu_comes_first_on_the_search_path()
    {
        using var tmp = new TempDir();
        // The decoy: a valid shared object without any torch symbol, named libtorch_cpu.so, first on LD_LIBRARY_PATH
        // (as Debian's libtorch1.13 would be found). TorchSharp asks for libtorch_cpu.so by bare name.
        var decoyFolder = Directory.CreateDirectory(tmp.File("decoy")).FullName;
        File.Copy(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "libSystem.Native.so"), Path.Combine(decoyFolder, "libtorch_cpu.so"));
        // The environment notebook's two bootstrap cells, then one op and the libtorch_cpu.so the kernel mapped.
        var notebook = JsonNode.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "notebooks", "00-environment.ipynb")))!;
        var cells = notebook["cells"]!.AsArray().Where(c => (string?)c!["cell_type"] == "code").Take(2).Select(c => c!.DeepClone()).ToList();
        var probe = cells[1].DeepClone();
        probe["id"] = "decoy-probe";
        probe["source"] = new JsonArray(
            "var mapped = File.ReadLines(\"/proc/self/maps\").Where(l => l.EndsWith(\"/libtorch_cpu.so\")).Select(l => l[l.IndexOf('/')..]).Distinct();\n",
            "$\"sum {torch.ones(2, 3).sum().item<float>()}; mapped {string.Join(\" \", mapped)}\"");
        notebook["cells"] = new JsonArray([.. cells, probe]);
        var path = tmp.File("decoy-libtorch.ipynb");
        File.WriteAllText(path, notebook.ToJsonString());

        var document = NotebookRunner.Execute(path, tmp.Path, new Dictionary<string, string> { ["LD_LIBRARY_PATH"] = decoyFolder });
        var text = string.Join("\n", NotebookRunner.OutputData(document).Select(d => d.Content));
        log.WriteLine(text);
        Assert.Contains("libtorch 2.10", text);
        Assert.Contains("sum 6; mapped ", text);
        Assert.DoesNotContain(decoyFolder, text);
    }

    static List<string> Html(JsonNode document) =>
        NotebookRunner.OutputData(document).Where(d => d.Mime == "text/html").Select(d => d.Content).ToList();

    [Fact]
    public void Dataset_notebook_shows_records_histogram_and_leakage_check()
    {
        using var tmp = new TempDir();
        var html = Html(NotebookRunner.Execute("notebooks/01-dataset-build.ipynb", tmp.Path));
        Assert.True(html.Count(h => h.Contains("image + face box") && h.Contains("data:image/png;base64,")) >= 2, "record cards with images are missing");
        Assert.True(html.Any(h => h.Contains("references:") && h.Contains("face &larr;") && h.Contains("clothes &larr;")), "no training-example card with references");
        Assert.True(html.Any(h => h.Contains("Plotly.newPlot") && h.Contains("Images by number of similar images")), "no similar-length histogram");
        Assert.True(html.Any(h => h.Contains("scheme b: leakage-free")), "scheme b must pass the leakage check");
        Assert.True(html.Any(h => h.Contains("scheme a: LEAKS") && h.Contains("cut from the target itself")), "scheme a must show its self references");
        Assert.True(html.Count(h => h.Contains(">images kept</td>")) >= 2, "stats tables of the synthetic and the rebuilt folder are missing");
        // Smoke mode writes into the temp folder (here the test's own), never into the repository.
        Assert.Single(Directory.GetDirectories(tmp.Path, "retribooru-01-dataset-*"));
    }

    [Fact]
    public void RetriNet_notebook_trains_with_live_charts_and_compares_with_text_only()
    {
        using var tmp = new TempDir();
        var html = Html(NotebookRunner.Execute("notebooks/02-train-retrinet.ipynb", tmp.Path));
        foreach (var run in new[] { "base model", "RetriNet", "text-only" })
            Assert.True(html.Any(h => h.Contains("Plotly.newPlot") && h.Contains($"\"name\":\"{run}\"")), $"no live loss chart for {run}");
        Assert.True(html.Any(h => h.Contains("Plotly.newPlot") && h.Contains("Denoising error per timestep")), "no denoising-error chart of the base model");
        Assert.True(html.Any(h => h.Contains("PositionInRange") && h.Contains("Readability")), "no image-quality table (KID, floor, ceiling, readability)");
        var comparison = html.SingleOrDefault(h => h.Contains(">RetriNet</div>") && h.Contains(">text-only</div>"));
        Assert.True(comparison is not null, "no side-by-side comparison of RetriNet and text-only samples");
        Assert.True(comparison!.Contains("references (face, face, clothes, clothes)"), "the comparison must show the references");
        Assert.True(comparison.Split("data:image/png;base64,").Length - 1 == 3, "references, RetriNet and text-only grids must be images");
    }

    [Fact]
    public void Ablation_notebook_runs_the_sweep_and_charts_the_trade_off()
    {
        using var tmp = new TempDir();
        var html = Html(NotebookRunner.Execute("notebooks/03-prompt-dropout-ablation.ipynb", tmp.Path));
        Assert.True(html.Any(h => h.Contains("Plotly.newPlot") && h.Contains("across train.prompt_dropout")), "no trade-off chart across dropout rates");
        Assert.True(html.Any(h => h.Contains("Plotly.newPlot") && h.Contains("seen split (mean, 95% CI)")), "no metric bars with confidence intervals");
        Assert.True(html.Any(h => h.Contains("prompt_dropout=0.7")), "the results must name the dropout rates");
        Assert.True(html.Any(h => h.Contains(">references</div>") && h.Contains("data:image/png;base64,")), "no sample grid");
    }

    [Fact]
    public void Swd_notebook_explains_the_metric_and_shows_the_sanity_cases()
    {
        using var tmp = new TempDir();
        var document = NotebookRunner.Execute("notebooks/04-swd-analysis.ipynb", tmp.Path);
        var html = Html(document);
        Assert.True(html.Any(h => h.Contains("Plotly.newPlot") && h.Contains("answer diversity (SWD =")), "no pairwise diversity heat map");
        Assert.True(html.Any(h => h.Contains("Plotly.newPlot") && h.Contains("SWD vs identity")), "no SWD vs identity scatter");
        // "ideal" needs two other images of the target's outfit, which the smoke-size world may not have.
        Assert.True(html.Any(h => h.Contains(">copy<") && h.Contains(">random<")), "no sanity-case table");
        Assert.True(html.Any(h => h.Contains("novelty")), "no per-generation walkthrough table");
        Assert.True(html.Any(h => h.Contains(">Kid<") && h.Contains(">Readability<")), "the results table must show image quality (KID, readability)");
    }
}
