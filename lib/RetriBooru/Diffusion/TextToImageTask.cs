using System.Text.Json.Serialization;
using RetriBooru.Settings;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>
/// Base text-to-image training (the embedded world's stand-in for SD pretraining): the U-Net and the text
/// encoder learn to predict the noise (or v) added to dataset images, conditioned on their tag prompts. The
/// prompt is replaced by the empty prompt with probability <see cref="PromptDropout"/>, which gives the
/// unconditional branch classifier-free guidance needs. A VAE, when present, stays frozen.
/// </summary>
public sealed class TextToImageTask : ITrainingTask
{
    readonly DiffusionModel model;
    readonly IImagePromptDataset data;
    readonly NoiseSchedule schedule;

    public double PromptDropout { get; }
    public bool TrainTextEncoder { get; }
    /// <summary>Min-SNR-gamma loss weighting (null = the plain MSE on the target); see <see cref="NoiseSchedule.MinSnrWeights"/>.</summary>
    public double? MinSnrGamma { get; }

    /// <summary>Loss weight of the background relative to the figure mask (null = the plain loss; examples without a mask count fully).</summary>
    public double? BackgroundWeight { get; }

    public TextToImageTask(DiffusionModel model, IImagePromptDataset data, double promptDropout = 0.1, bool trainTextEncoder = true, double? minSnrGamma = TrainingRecipe.MinSnrGamma,
        double? backgroundWeight = null)
    {
        if (backgroundWeight is double w && !(w is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(backgroundWeight), w, "background weight must be in [0, 1]");
        BackgroundWeight = backgroundWeight;
        if (promptDropout is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(promptDropout), promptDropout, "prompt dropout must be in [0, 1]");
        if (minSnrGamma is double g && !(g > 0 && double.IsFinite(g))) throw new ArgumentOutOfRangeException(nameof(minSnrGamma), g, "min-SNR gamma must be a positive finite number");
        MinSnrGamma = minSnrGamma;
        if (data.ImageSize != model.Config.ImageSize)
            throw new ArgumentException($"dataset images are {data.ImageSize} px but model '{model.Config.Name}' expects {model.Config.ImageSize} px");
        this.model = model;
        this.data = data;
        schedule = new NoiseSchedule(model.Config.Schedule);
        PromptDropout = promptDropout;
        TrainTextEncoder = trainTextEncoder;
        var trainable = model.Unet.named_parameters().Select(p => new KeyValuePair<string, Parameter>("unet." + p.name, p.parameter)).ToList();
        if (trainTextEncoder) trainable.AddRange(model.TextEncoder.named_parameters().Select(p => new KeyValuePair<string, Parameter>("text_encoder." + p.name, p.parameter)));
        else foreach (var p in model.TextEncoder.parameters()) p.requires_grad = false;
        if (model.Vae is not null) foreach (var p in model.Vae.parameters()) p.requires_grad = false;
        TrainableParameters = trainable;
    }

    public int ExampleCount => data.Count;
    public IReadOnlyList<KeyValuePair<string, Parameter>> TrainableParameters { get; }

    /// <summary>A prepared batch: images, noise, timesteps and the token ids of the (possibly dropped) prompts.</summary>
    sealed class Batch(Tensor images, Tensor noise, Tensor timesteps, Tensor tokenIds, Tensor? lossWeights) : ITrainingBatch
    {
        public Tensor Images { get; } = images;
        public Tensor Noise { get; } = noise;
        public Tensor Timesteps { get; } = timesteps;
        public Tensor TokenIds { get; } = tokenIds;
        /// <summary>Per-pixel loss weights [B, 1, h, w] at model resolution (null: plain loss).</summary>
        public Tensor? LossWeights { get; } = lossWeights;
        public int Count => (int)Images.shape[0];

        public void Dispose()
        {
            Images.Dispose();
            Noise.Dispose();
            Timesteps.Dispose();
            TokenIds.Dispose();
            LossWeights?.Dispose();
        }
    }

    public ITrainingBatch Prepare(int[] batch, long step, Generator generator)
    {
        using var scope = NewDisposeScope();
        var device = model.Device;
        var examples = batch.Select(data.Get).ToList();
        var images = stack(examples.Select(e => e.Image)).to(device);
        // Fixed draw order from the step's generator: noise, timesteps, prompt dropout.
        var noise = randn([batch.Length, .. model.SampleShape], generator: generator).to(device);
        var t = schedule.SampleTimesteps(batch.Length, generator, device);
        var drop = rand([batch.Length], generator: generator).data<float>().ToArray();
        var prompts = examples.Select((e, i) => drop[i] < PromptDropout ? "" : e.Prompt).ToList();
        var ids = model.TokenIds(prompts);
        Tensor? weights = null;
        if (BackgroundWeight is double w)
        {
            var masks = ReferenceTrainingTask.MasksAtModelResolution(examples.Select(e => e.Mask), model.SampleShape[1], model.SampleShape[2]);
            weights = ReferenceTrainingTask.WithBackground(masks, w).to(device).MoveToOuterDisposeScope();
        }
        return new Batch(images.MoveToOuterDisposeScope(), noise.MoveToOuterDisposeScope(), t.MoveToOuterDisposeScope(), ids.MoveToOuterDisposeScope(), weights);
    }

    public Tensor Loss(ITrainingBatch prepared, int start, int count)
    {
        using var scope = NewDisposeScope();
        var batch = (Batch)prepared;
        Tensor x0;
        using (no_grad()) x0 = model.ToModelSpace(batch.Images.narrow(0, start, count));
        var noise = batch.Noise.narrow(0, start, count);
        var t = batch.Timesteps.narrow(0, start, count);
        var context = model.TextEncoder.Forward(batch.TokenIds.narrow(0, start, count));
        var noisy = schedule.AddNoise(x0, noise, t);
        var prediction = schedule.TrainingPrediction(model.Unet.Forward(noisy, t, context), noisy, t);
        var target = schedule.Target(x0, noise, t);
        // Per-sample squared error (weighted by min(SNR, gamma) in x0 terms when on), summed and divided by the
        // whole batch's size: the shards' contributions add up to the batch mean.
        // With a figure weight each sample's error is its weighted mean (sum(w e) / (sum(w) C)), so the loss keeps its scale.
        var squared = (prediction - target).Squared();
        var perSample = batch.LossWeights is { } weights
            ? (squared * weights.narrow(0, start, count)).sum([1, 2, 3]) / (weights.narrow(0, start, count).sum([1, 2, 3]).Times(squared.shape[1]).AtLeast(1e-6))
            : squared.mean([1, 2, 3]);
        if (MinSnrGamma is double gamma) perSample = perSample * schedule.MinSnrWeights(t, x0, gamma).flatten();
        return perSample.sum().Over(batch.Count).MoveToOuterDisposeScope();
    }

    public void SaveModel(string folder) => ModelStore.SaveDiffusers(model, folder);
    public void LoadModel(string folder) => ModelStore.LoadWeightsInto(model, folder);

    public System.Text.Json.Nodes.JsonObject Describe()
    {
        var description = new System.Text.Json.Nodes.JsonObject
        {
            ["task"] = "text-to-image",
            ["config"] = model.Config.Name,
            ["examples"] = data.Count,
            ["prompt_dropout"] = PromptDropout,
            ["prediction_type"] = model.Config.Schedule.PredictionType.Name(),
            ["min_snr_gamma"] = MinSnrGamma,
        };
        // Only when set, so the description of plain-loss training (and what resume compares) stays as before.
        if (BackgroundWeight is double w) description["background_weight"] = w;
        return description;
    }
}

/// <summary>Sampling settings for <see cref="TextToImage"/>.</summary>
/// <summary>
/// How a text-to-image model is sampled (`sample-base`, `model diagnose`): a settings record, its flags are the JSON
/// names in kebab case. The names match the reference models' sampling settings in <see cref="Metrics.EvaluationSettings"/>.
/// </summary>
public sealed record SamplingOptions
{
    [JsonPropertyName("sampling_steps"), Setting("DDIM steps per sample.", Min = 1, Max = 1000)]
    public int Steps { get; init; } = 25;

    [JsonPropertyName("text_guidance"), Setting("Classifier-free guidance scale of the prompt.", Min = 0, Max = 50)]
    public double GuidanceScale { get; init; } = 3.0;

    [JsonPropertyName("eta"), Setting("DDIM eta: 0 is deterministic, 1 draws fresh noise at every step (ancestral).", Min = 0, Max = 1)]
    public double Eta { get; init; }

    public long Seed { get; init; }
    /// <summary>The unconditional prompt of classifier-free guidance (the empty prompt prompt-dropout trained).</summary>
    public string NegativePrompt { get; init; } = "";

    /// <summary>Every field checked before sampling starts; one message naming the field.</summary>
    public void Validate()
    {
        if (Steps is < 1 or > 1000) throw new ArgumentException($"sampling steps must be in [1, 1000], got {Steps}");
        if (!double.IsFinite(GuidanceScale) || GuidanceScale is < 0 or > 50) throw new ArgumentException($"guidance scale must be a finite number in [0, 50], got {GuidanceScale}");
        if (!double.IsFinite(Eta) || Eta is < 0 or > 1) throw new ArgumentException($"eta must be in [0, 1], got {Eta}");
    }
}

/// <summary>Text-to-image sampling: DDIM with classifier-free guidance, decoded to images in [-1, 1].</summary>
public static class TextToImage
{
    public static Tensor Generate(DiffusionModel model, IReadOnlyList<string> prompts, SamplingOptions options, IProgress<int>? progress = null)
    {
        options.Validate();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var schedule = new NoiseSchedule(model.Config.Schedule);
        var sampler = new DdimSampler(schedule);
        using var generator = Seeding.TorchGenerator(options.Seed, "sampling");
        var shape = new long[] { prompts.Count }.Concat(model.SampleShape).ToArray();
        var noise = randn(shape, generator: generator).to(model.Device);
        var context = model.EncodePrompts(prompts);
        var unconditional = model.EncodePrompts(Enumerable.Repeat(options.NegativePrompt, prompts.Count).ToList());
        var denoiser = ClassifierFreeGuidance.Guided((x, t, c) => model.Unet.Forward(x, t, c), context, unconditional, options.GuidanceScale);
        var latents = sampler.Sample(denoiser, noise, options.Steps, options.Eta, generator, progress);
        return model.ToImages(latents).MoveToOuterDisposeScope();
    }
}
