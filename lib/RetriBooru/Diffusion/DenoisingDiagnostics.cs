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

public static class DenoisingDiagnostics
{
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
