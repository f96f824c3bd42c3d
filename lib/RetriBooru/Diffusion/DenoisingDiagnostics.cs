using TorchSharp;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>
/// The denoising error at one timestep, averaged over images: the model's x0 estimate against the truth, and the
/// naive estimate x_t (the noisy input taken as the answer). A model that denoises well has a ratio far below 1
/// at every timestep; near 1 at low noise means the last sampling steps leave the noise in (speckle).
/// </summary>
public sealed record DenoisingErrorRow(int Timestep, double AlphaBar, double LogSnr, double ModelX0Mse, double NaiveX0Mse)
{
    public double Ratio => NaiveX0Mse > 0 ? ModelX0Mse / NaiveX0Mse : double.NaN;
}

/// <summary>
/// How much one attribute's tag steers the denoiser at one timestep: the x0 error with each image's own prompt
/// against the error with that attribute's tag replaced by another value's (same noise). A ratio of 1 means the
/// model ignores the tag; well above 1 means it draws what the tag says.
/// </summary>
/// <param name="Attribute">The attribute whose tag was replaced, or <see cref="DenoisingDiagnostics.WholePrompt"/> for the empty prompt.</param>
/// <param name="Images">Images whose prompt carries one of the attribute's tags.</param>
/// <param name="OwnFigureX0Mse">The same error inside the figure masks (null without masks): what a figure's tag can change is small next to the background.</param>
public sealed record TagSensitivityRow(string Attribute, int Timestep, int Images, double OwnPromptX0Mse, double SwappedX0Mse,
    double? OwnFigureX0Mse = null, double? SwappedFigureX0Mse = null)
{
    public double Ratio => OwnPromptX0Mse > 0 ? SwappedX0Mse / OwnPromptX0Mse : double.NaN;
    public double? FigureRatio => OwnFigureX0Mse is double own && SwappedFigureX0Mse is double swapped && own > 0 ? swapped / own : null;
}

/// <summary>One attribute of <see cref="DenoisingDiagnostics.TagSensitivity"/>: its name and the prompt tag of each of its values.</summary>
public sealed record TaggedAttribute(string Name, IReadOnlyList<string> ValueTags);

public static class DenoisingDiagnostics
{
    /// <summary>The row name of the whole prompt replaced by the empty one (how much the text steers at all).</summary>
    public const string WholePrompt = "(whole prompt)";

    /// <summary>
    /// For each attribute and timestep: the x0 MSE (model space) over the images whose prompt names one of the
    /// attribute's values, with the own prompt and with that tag replaced by another value's tag (value i + 1 + (k mod
    /// (n - 1)) for the k-th such image, so every other value is used), plus <see cref="WholePrompt"/> over all images.
    /// Both prompts see the same noise from (seed, "tag-sensitivity/t"). Attributes no prompt names are left out.
    /// With <paramref name="figureMasks"/> ([N, 1, H, W] in [0, 1]) the errors are also taken inside the figure
    /// (masks area-resized to model resolution, as the masked training loss does).
    /// </summary>
    public static IReadOnlyList<TagSensitivityRow> TagSensitivity(DiffusionModel model, Tensor images, IReadOnlyList<string> prompts,
        IReadOnlyList<TaggedAttribute> attributes, IReadOnlyList<int> timesteps, long seed, int batchSize = 32, Tensor? figureMasks = null)
    {
        if (images.shape[0] != prompts.Count) throw new ArgumentException($"{images.shape[0]} images but {prompts.Count} prompts");
        if (figureMasks is not null && (figureMasks.dim() != 4 || figureMasks.shape[0] != prompts.Count || figureMasks.shape[1] != 1))
            throw new ArgumentException($"figure masks must be [{prompts.Count}, 1, H, W], got [{string.Join(", ", figureMasks.shape)}]");
        var schedule = new NoiseSchedule(model.Config.Schedule);
        foreach (var t in timesteps)
            if (t < 0 || t >= schedule.Steps) throw new ArgumentException($"timestep {t} is outside [0, {schedule.Steps - 1}]");
        static List<string> Split(string prompt) => prompt.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        // (attribute, image index, swapped prompt) for every image whose prompt names the attribute.
        var probes = new List<(string Attribute, List<(int Image, string Prompt)> Swaps)>
        {
            (WholePrompt, Enumerable.Range(0, prompts.Count).Select(i => (i, "")).ToList()),
        };
        foreach (var attribute in attributes)
        {
            if (attribute.ValueTags.Count < 2) continue;
            var swaps = new List<(int, string)>();
            for (int i = 0; i < prompts.Count; i++)
            {
                var tags = Split(prompts[i]);
                int position = tags.FindIndex(tag => attribute.ValueTags.Contains(tag, StringComparer.OrdinalIgnoreCase));
                if (position < 0) continue;
                int value = attribute.ValueTags.ToList().FindIndex(v => string.Equals(v, tags[position], StringComparison.OrdinalIgnoreCase));
                int n = attribute.ValueTags.Count;
                tags[position] = attribute.ValueTags[(value + 1 + swaps.Count % (n - 1)) % n];
                swaps.Add((i, string.Join(", ", tags)));
            }
            if (swaps.Count > 0) probes.Add((attribute.Name, swaps));
        }
        var rows = new List<TagSensitivityRow>();
        using var noGrad = no_grad();
        foreach (var t in timesteps)
        {
            // One noise draw per image, shared by every attribute's own and swapped prompts.
            using var generator = Seeding.TorchGenerator(seed, $"tag-sensitivity/{t}");
            using var noise = randn([prompts.Count, .. model.SampleShape], generator: generator);
            foreach (var (attribute, swaps) in probes)
            {
                double own = 0, swapped = 0, ownFigure = 0, swappedFigure = 0, figureWeight = 0;
                long count = 0;
                for (int start = 0; start < swaps.Count; start += batchSize)
                {
                    using var scope = NewDisposeScope();
                    var chunk = swaps.Skip(start).Take(batchSize).ToList();
                    var index = tensor(chunk.Select(c => (long)c.Image).ToArray());
                    var x0 = model.ToModelSpace(images.index_select(0, index).to(model.Device));
                    var tBatch = ScalarOps.Filled([chunk.Count], t, int64, model.Device);
                    var noisy = schedule.AddNoise(x0, noise.index_select(0, index).to(model.Device), tBatch);
                    var mask = figureMasks is null ? null
                        : nn.functional.interpolate(figureMasks.index_select(0, index), [x0.shape[2], x0.shape[3]], mode: InterpolationMode.Area).to(model.Device);
                    (double All, double Figure) Error(IReadOnlyList<string> chunkPrompts)
                    {
                        var output = model.Unet.Forward(noisy, tBatch, model.EncodePrompts(chunkPrompts));
                        var (predicted, _) = schedule.Split(output, noisy, schedule.AlphasCumprod[t]);
                        var squared = (predicted - x0).Squared();
                        return (squared.sum().item<float>(), mask is null ? 0 : (squared * mask).sum().item<float>());
                    }
                    var (a, af) = Error(chunk.Select(c => prompts[c.Image]).ToList());
                    var (b, bf) = Error(chunk.Select(c => c.Prompt).ToList());
                    (own, swapped, ownFigure, swappedFigure) = (own + a, swapped + b, ownFigure + af, swappedFigure + bf);
                    if (mask is not null) figureWeight += mask.sum().item<float>() * x0.shape[1];
                    count += x0.numel();
                }
                bool figure = figureMasks is not null && figureWeight > 0;
                rows.Add(new TagSensitivityRow(attribute, t, swaps.Count, own / count, swapped / count,
                    figure ? ownFigure / figureWeight : null, figure ? swappedFigure / figureWeight : null));
            }
        }
        return rows;
    }

    /// <summary>Timesteps spread over the schedule, denser at low noise where speckle is decided.</summary>
    public static int[] DefaultTimesteps(int trainSteps) =>
        new[] { 0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0 }
            .Select(f => (int)Math.Round(f * (trainSteps - 1))).Distinct().ToArray();

    /// <summary>
    /// x0 MSE (in model space, images in [-1, 1]) of the model and of the naive guess at each timestep, over
    /// <paramref name="images"/> [N, 3, H, W] with their prompts; noise from (seed, "diagnose/t") so runs compare.
    /// </summary>
    public static IReadOnlyList<DenoisingErrorRow> Measure(DiffusionModel model, Tensor images, IReadOnlyList<string> prompts, IReadOnlyList<int> timesteps,
        long seed, int batchSize = 32)
    {
        if (images.shape[0] != prompts.Count) throw new ArgumentException($"{images.shape[0]} images but {prompts.Count} prompts");
        var schedule = new NoiseSchedule(model.Config.Schedule);
        foreach (var t in timesteps)
            if (t < 0 || t >= schedule.Steps) throw new ArgumentException($"timestep {t} is outside [0, {schedule.Steps - 1}]");
        var rows = new List<DenoisingErrorRow>();
        using var noGrad = no_grad();
        foreach (var t in timesteps)
        {
            double modelSum = 0, naiveSum = 0;
            long count = 0;
            using var generator = Seeding.TorchGenerator(seed, $"diagnose/{t}");
            for (int start = 0; start < prompts.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                int n = Math.Min(batchSize, prompts.Count - start);
                var x0 = model.ToModelSpace(images.narrow(0, start, n).to(model.Device));
                var noise = randn(x0.shape, generator: generator).to(model.Device);
                var tBatch = ScalarOps.Filled([n], t, int64, model.Device);
                var noisy = schedule.AddNoise(x0, noise, tBatch);
                var output = model.Unet.Forward(noisy, tBatch, model.EncodePrompts(prompts.Skip(start).Take(n).ToList()));
                var (predicted, _) = schedule.Split(output, noisy, schedule.AlphasCumprod[t]);
                modelSum += (predicted - x0).Squared().sum().item<float>();
                naiveSum += (noisy - x0).Squared().sum().item<float>();
                count += x0.numel();
            }
            double a = schedule.AlphasCumprod[t];
            // Clamped so a zero-terminal-SNR schedule gives a finite (JSON-writable) log SNR.
            rows.Add(new DenoisingErrorRow(t, a, Math.Log(Math.Max(a, 1e-20) / Math.Max(1 - a, 1e-20)), modelSum / count, naiveSum / count));
        }
        return rows;
    }
}
