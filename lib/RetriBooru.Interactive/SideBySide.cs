using RetriBooru.Settings;
using System.Net;
using System.Text;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Modeling;
using static TorchSharp.torch;

namespace RetriBooru.Interactive;

/// <summary>
/// Image grids shown next to each other under titles, rows aligned (e.g. references | RetriNet | text-only);
/// the row labels of the first grid label every row. Owns its grids.
/// </summary>
public sealed class SideBySide : IDisposable
{
    readonly List<(string Title, ImageGrid Grid)> _columns = [];

    public IReadOnlyList<string> Titles => _columns.Select(c => c.Title).ToList();
    public IReadOnlyList<ImageGrid> Grids => _columns.Select(c => c.Grid).ToList();

    public SideBySide Add(string title, ImageGrid grid)
    {
        if (_columns.Count > 0 && grid.RowCount != _columns[0].Grid.RowCount)
            throw new ArgumentException($"grid '{title}' has {grid.RowCount} rows, '{_columns[0].Title}' has {_columns[0].Grid.RowCount}");
        _columns.Add((title, grid));
        return this;
    }


    public string ToHtml()
    {
        if (_columns.Count == 0) throw new InvalidOperationException("nothing to show: add a grid first");
        var html = new StringBuilder("<div style=\"display:flex;gap:16px;align-items:flex-start;font-family:sans-serif;font-size:12px\">");
        for (int i = 0; i < _columns.Count; i++)
        {
            var (title, grid) = _columns[i];
            html.Append("<div><div style=\"font-weight:bold;text-align:center;margin-bottom:2px\">").Append(WebUtility.HtmlEncode(title)).Append("</div>");
            html.Append(i == 0 ? WorkbenchFormatters.GridHtml(grid)
                : $"<img src=\"data:image/png;base64,{Convert.ToBase64String(grid.ToPng())}\" style=\"image-rendering:pixelated\" />");
            html.Append("</div>");
        }
        return html.Append("</div>").ToString();
    }

    public void Dispose()
    {
        foreach (var (_, grid) in _columns) grid.Dispose();
        _columns.Clear();
    }
}

/// <summary>A reference-conditioned model under a display name.</summary>
public sealed record NamedModel(string Name, DiffusionModel Model, IReferenceConditionedModel Branch);

/// <summary>Samples several models on the same examples (same prompts, references and noise) and lays them out side by side.</summary>
public static class ReferenceComparison
{
    /// <summary>
    /// One row per example: its references, then <paramref name="samplesPerExample"/> samples of each model. Every
    /// model gets the same seed, so differences come from the models, not the noise. Prompts are shown to the models in
    /// <paramref name="promptView"/> (default <c>context</c>, as the evaluation: no character, hair, eye or clothing tags,
    /// so what a sample shows of the identity comes from its references).
    /// </summary>
    public static SideBySide Build(IReadOnlyList<ReferenceExample> examples, IReadOnlyList<NamedModel> models, ReferenceSamplingOptions options,
        int samplesPerExample = 2, int cellSize = 64, PromptView promptView = PromptView.Context)
    {
        if (examples.Count == 0) throw new ArgumentException("no examples to sample");
        if (samplesPerExample < 1) throw new ArgumentOutOfRangeException(nameof(samplesPerExample), samplesPerExample, "must be at least 1");
        var view = new SideBySide();
        try
        {
            var references = new ImageGrid(cellSize);
            view.Add("references (" + string.Join(", ", examples[0].References.Select(r => r.Concept.Name())) + ")", references);
            foreach (var example in examples)
            {
                using var scope = NewDisposeScope();
                references.AddRow(RowLabel(example), stack(example.References.Select(r => r.Image)));
            }
            var prompts = examples.SelectMany(e => Enumerable.Repeat(PromptViews.Apply(promptView, e.Prompt, e.Character), samplesPerExample)).ToList();
            var referenceSets = examples.SelectMany(e => Enumerable.Repeat(e.References, samplesPerExample)).ToList();
            foreach (var model in models)
            {
                using var scope = NewDisposeScope();
                var images = ReferenceSampler.Generate(model.Model, model.Branch, prompts, referenceSets, options);
                var grid = new ImageGrid(cellSize);
                for (int i = 0; i < examples.Count; i++)
                    grid.AddRow(RowLabel(examples[i]), images.narrow(0, i * samplesPerExample, samplesPerExample));
                view.Add(model.Name, grid);
            }
            return view;
        }
        catch
        {
            view.Dispose();   // the grids hold bitmaps
            throw;
        }
    }

    static string RowLabel(ReferenceExample e) => $"{e.Character} {e.ClothingId} ({e.Split})";
}
